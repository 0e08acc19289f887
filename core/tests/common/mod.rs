//! Test fixtures shared by `core/tests/deploy.rs` and
//! `exec-helper/tests/run.rs`: a busybox-static rootfs plus `/exports` files,
//! served through `deploy::ImageStore` (what the OSTree store does in
//! production).
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use syscontainer::deploy::{DeployError, ImageSpec, ImageStore};

/// The project's copy of the corpus.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus")
        .canonicalize()
        .expect("tests/corpus exists")
}

pub fn test_image(name: &str) -> PathBuf {
    corpus().join("atomic-test-images").join(name)
}

/// A busybox-static rootfs, built once per test process; fails loudly if
/// busybox is not installed.
fn busybox_template() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let bb = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .expect("busybox is required: apt-get install busybox-static");
        let out = Command::new(bb).arg("--list").output().unwrap();
        assert!(out.status.success());
        let dir = std::env::temp_dir().join(format!("syscontainer-busybox-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for d in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "run", "var/run", "usr/bin", "usr/sbin",
        ] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::copy(bb, dir.join("bin/busybox")).unwrap();
        for applet in String::from_utf8(out.stdout).unwrap().lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
            }
        }
        fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
        fs::write(
            dir.join("usr/bin/run.sh"),
            "#!/bin/sh\n\
             echo \"ran: PORT=$PORT RECEIVER=$RECEIVER NAME=$NAME UUID=$UUID\"\n\
             [ -d /var/run ] && echo \"$PORT $RECEIVER\" > /var/run/ran 2>/dev/null\n\
             if [ -n \"$SLEEP\" ] && [ \"$SLEEP\" != 0 ]; then\n\
               trap 'echo got TERM; exit 0' TERM\n\
               while :; do sleep 0.1; done\n\
             fi\n",
        )
        .unwrap();
        fs::set_permissions(
            dir.join("usr/bin/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        dir
    })
}

/// Fill `dest` with the busybox rootfs and copy `exports` (a directory of
/// `/exports` files) into `dest/exports`.
pub fn busybox_rootfs(dest: &Path, exports: Option<&Path>) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(busybox_template())
        .arg(dest)
        .status()
        .unwrap();
    assert!(st.success());
    if let Some(e) = exports {
        let st = Command::new("cp")
            .arg("-a")
            .arg(e)
            .arg(dest.join("exports"))
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// One fixture image: a name, an ID, an image config and the exports dir.
#[derive(Clone)]
pub struct Fixture {
    pub spec: ImageSpec,
    pub exports: Option<PathBuf>,
}

/// Images served from fixtures, mutable so a test can "push" a new version.
#[derive(Default)]
pub struct FixtureSource {
    pub images: RefCell<BTreeMap<String, Fixture>>,
    pub fail_materialize: RefCell<bool>,
}

impl FixtureSource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) image `name` with ID derived from `version`.
    pub fn add(&self, name: &str, version: u32, exports: Option<&Path>) -> ImageSpec {
        let spec = ImageSpec {
            name: name.to_string(),
            image_id: format!("sha256:{:064x}", (name.len() as u64) << 32 | version as u64),
            config: serde_json::json!({"config": {"Cmd": ["/bin/sh", "-c", "echo default-config"],
                "Env": ["FROM_IMAGE=yes"]}}),
        };
        self.images.borrow_mut().insert(
            name.to_string(),
            Fixture {
                spec: spec.clone(),
                exports: exports.map(Path::to_path_buf),
            },
        );
        spec
    }
}

impl ImageStore for FixtureSource {
    fn resolve(&self, image: &str) -> Result<ImageSpec, DeployError> {
        let images = self.images.borrow();
        images
            .get(image)
            .or_else(|| images.values().find(|f| f.spec.image_id == image))
            .map(|f| f.spec.clone())
            .ok_or_else(|| DeployError::Io {
                what: "no such test image",
                path: PathBuf::from(image),
                source: std::io::ErrorKind::NotFound.into(),
            })
    }

    fn materialize(&self, image: &ImageSpec, dest: &Path) -> Result<(), DeployError> {
        if *self.fail_materialize.borrow() {
            return Err(DeployError::Io {
                what: "test: checkout fails for",
                path: dest.to_path_buf(),
                source: std::io::ErrorKind::Other.into(),
            });
        }
        let images = self.images.borrow();
        let f = images
            .values()
            .find(|f| f.spec.image_id == image.image_id)
            .expect("resolved");
        busybox_rootfs(dest, f.exports.as_deref());
        Ok(())
    }

    fn repo(&self) -> Option<String> {
        Some("/ostree/repo".into())
    }
}

/// A unique container name (runc's state in /run/runc is global).
pub fn uniq(tag: &str) -> String {
    format!("t{}-{tag}", std::process::id())
}

/// Write a directory of exports files: `(relative path, content)`.
pub fn exports_dir(base: &Path, files: &[(&str, &str)]) -> PathBuf {
    for (p, c) in files {
        let full = base.join(p);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, c).unwrap();
    }
    base.to_path_buf()
}
