/* The floor of bench/generator.sh: the files a generator run on the
 * benchmark's records must create, made with as few system calls as a C
 * program can, and no parsing. For each record RECORDS/NAME.json it reads the
 * record (openat, read to EOF, close, all relative to a directory fd), writes
 * its bytes to OUT/NAME.service (openat, write, close), and when the record
 * says "enabled": true, makes the two symlinks the generator makes
 * (multi-user.target.wants/ and syscontainers.target.wants/, symlinkat).
 *
 * With STATES (the two-file layout of declarative records: an intent file
 * and its state), it reads STATES/NAME.json instead, after an fstatat of
 * RECORDS/NAME.json: what the generator does for an intent file that is
 * still the one its state applied (the state's intentFile).
 *
 * This is the kernel's share of the work (tmpfs inodes, pages, dentries):
 * no generator that writes the same tree can take less.
 *
 * Usage: generator-floor RECORDS [STATES] OUT */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[1 << 16];

int main(int argc, char **argv) {
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s RECORDS [STATES] OUT\n", argv[0]);
		return 2;
	}
	int in = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int states = argc == 4 ? open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC) : in;
	int out = open(argv[argc - 1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (in < 0 || states < 0 || out < 0) {
		perror("open");
		return 1;
	}
	int wants[2] = {-1, -1};
	const char *dirs[2] = {"multi-user.target.wants", "syscontainers.target.wants"};
	DIR *d = fdopendir(dup(in));
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".json"))
			continue;
		struct stat st;
		if (states != in && fstatat(in, e->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
			perror(e->d_name);
			return 1;
		}
		int fd = openat(states, e->d_name, O_RDONLY | O_CLOEXEC);
		size_t n = 0;
		ssize_t r;
		while (fd >= 0 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
			n += r;
		close(fd);
		buf[n] = 0;
		char unit[300], target[310];
		snprintf(unit, sizeof unit, "%.*s.service", (int)(len - 5), e->d_name);
		fd = openat(out, unit, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0 || write(fd, buf, n) != (ssize_t)n) {
			perror(unit);
			return 1;
		}
		close(fd);
		if (!strstr(buf, "\"enabled\": true"))
			continue;
		snprintf(target, sizeof target, "../%s", unit);
		for (int i = 0; i < 2; i++) {
			if (wants[i] < 0) {
				mkdirat(out, dirs[i], 0777);
				wants[i] = openat(out, dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			}
			if (symlinkat(target, wants[i], unit)) {
				perror(unit);
				return 1;
			}
		}
	}
	return 0;
}
