/* The floor of bench/generator.sh for the generator's cache
 * (core/src/gencache.rs): the tree that syscontainer-generator writes when
 * every container is unchanged since syscontainer last wrote the cache, made
 * with the fewest system calls that the same checks need and no parsing
 * beyond the cache's length-prefixed framing.
 *
 * It lists RECORDS and STATES (readdir: the generator must find every intent
 * file and every state), reads CACHE (64 KiB reads), and for each entry
 * makes the two checks the generator makes (fstatat of the intent file and
 * of the state, compared with nothing: a floor) and writes its outputs: each
 * unit (openat, write, close), each symlink (symlinkat), and the Wants= lines
 * gathered into one drop-in TARGET.d/syscontainer.conf per target.
 *
 * Usage: generator-floor-cache RECORDS STATES CACHE OUT */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t u32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t u16(const unsigned char *p) { return p[0] | p[1] << 8; }

static void list(int dir) {
	DIR *d = fdopendir(dup(dir));
	while (readdir(d))
		;
	closedir(d);
}

struct dropin { char target[256]; char *text; size_t len, cap; };
static struct dropin drops[8];
static int ndrops;

static void want(const char *t, size_t tl, const char *u, size_t ul) {
	int i;
	for (i = 0; i < ndrops; i++)
		if (strlen(drops[i].target) == tl && !memcmp(drops[i].target, t, tl))
			break;
	if (i == ndrops) {
		if (ndrops == 8 || tl >= sizeof drops[0].target) return;
		memcpy(drops[i].target, t, tl);
		ndrops++;
	}
	struct dropin *d = &drops[i];
	if (d->len + ul + 8 > d->cap) {
		d->cap = (d->cap + ul + 8) * 2;
		d->text = realloc(d->text, d->cap);
	}
	memcpy(d->text + d->len, "Wants=", 6);
	memcpy(d->text + d->len + 6, u, ul);
	d->text[d->len + 6 + ul] = '\n';
	d->len += ul + 7;
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: %s RECORDS STATES CACHE OUT\n", argv[0]);
		return 2;
	}
	int in = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int states = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int out = open(argv[4], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
	if (in < 0 || states < 0 || out < 0 || fd < 0) {
		perror("open");
		return 1;
	}
	list(states);
	list(in);
	size_t cap = 1 << 16, n = 0;
	unsigned char *c = malloc(cap);
	ssize_t r;
	for (;;) {
		if (cap - n < (1 << 16))
			c = realloc(c, cap *= 2);
		if ((r = read(fd, c + n, 1 << 16)) <= 0)
			break;
		n += r;
	}
	close(fd);
	size_t p = 16;
	char name[300], path[1024];
	while (p + 4 <= n && u32(c + p) != 0xffffffff) {
		size_t end = p + 4 + u32(c + p), q = p + 4;
		size_t nl = u16(c + q);
		snprintf(name, sizeof name, "%.*s.json", (int)nl, c + q + 2);
		q += 2 + nl + 80;
		q += 2 + u16(c + q);
		struct stat st;
		fstatat(in, name, &st, AT_SYMLINK_NOFOLLOW);
		fstatat(states, name, &st, AT_SYMLINK_NOFOLLOW);
		unsigned k = u16(c + q);
		q += 2;
		while (k--) {
			unsigned kind = c[q];
			size_t pl = u16(c + q + 1);
			const char *pp = (const char *)c + q + 3;
			size_t dl = u32(c + q + 3 + pl);
			const char *dp = (const char *)c + q + 7 + pl;
			q += 7 + pl + dl;
			snprintf(path, sizeof path, "%.*s", (int)pl, pp);
			if (kind == 0) {
				int u = openat(out, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
				if (u < 0 || write(u, dp, dl) != (ssize_t)dl) {
					perror(path);
					return 1;
				}
				close(u);
			} else if (kind == 1) {
				char target[600];
				snprintf(target, sizeof target, "%.*s", (int)dl, dp);
				char *slash = strrchr(path, '/');
				if (slash) {
					*slash = 0;
					mkdirat(out, path, 0777);
					*slash = '/';
				}
				symlinkat(target, out, path);
			} else {
				want(pp, pl, dp, dl);
			}
		}
		p = end;
	}
	for (int i = 0; i < ndrops; i++) {
		snprintf(path, sizeof path, "%.255s.d", drops[i].target);
		mkdirat(out, path, 0777);
		snprintf(path, sizeof path, "%.255s.d/syscontainer.conf", drops[i].target);
		int u = openat(out, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		const char *head = "[Unit]\n";
		if (u < 0 || write(u, head, 7) != 7 || write(u, drops[i].text, drops[i].len) != (ssize_t)drops[i].len) {
			perror(path);
			return 1;
		}
		close(u);
	}
	return 0;
}
