//! Image trust (issue 13) with real parts: GnuPG keys, `skopeo copy
//! --sign-by` into a real registry (tests/fixtures/registry.sh, plain
//! HTTP), a registries.d lookaside on a local directory, and skopeo itself
//! as the reference for which images a policy accepts.
//!
//! Sigstore: Debian 12's skopeo 1.9.3 (and podman) are built with sigstore
//! disabled ("Debian-local change: sigstore disabled"): they neither sign
//! with `--sign-by-sigstore-private-key` nor verify `sigstoreSigned`, and
//! Debian 12 has no cosign. So the key pairs are made by
//! tests/sigstore-keygen.py in cosign's encrypted format, and the
//! signatures attached by tests/sigstore-sign.py as containers/image
//! attaches them (Python, Debian's python3-cryptography and python3-nacl:
//! another ECDSA implementation than ours). skopeo still referees those
//! rows wherever it verifies sigstore; where it answers "sigstore disabled"
//! the row's expectation stands alone, and the test says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REGISTRY_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/registry.sh");
const KEYGEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/sigstore-keygen.py");
const SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/sigstore-sign.py");
const FIXTURES: &str = "/var/tmp/syscontainer-fixtures";
/// What Debian's skopeo says for every sigstoreSigned requirement.
const SKOPEO_NO_SIGSTORE: &str = "sigstore disabled";

fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

struct Registry {
    dir: PathBuf,
    host: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(REGISTRY_SH)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

struct Env {
    t: tempfile::TempDir,
    reg: Registry,
    gnupg: PathBuf,
    key_a: PathBuf,
    key_b: PathBuf,
    /// Sigstore public keys (PEM) of the pairs "salice" and "sbob".
    skey_a: PathBuf,
    skey_b: PathBuf,
    rd: PathBuf,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.t.path().join(p)
    }

    fn gpg_key(&self, name: &str) -> (String, PathBuf) {
        run(Command::new("gpg")
            .env("GNUPGHOME", &self.gnupg)
            .args(["--batch", "--passphrase", "", "--quick-gen-key"])
            .arg(format!("{name} <{name}@example.invalid>"))
            .args(["ed25519", "sign", "never"]));
        let o = run(Command::new("gpg")
            .env("GNUPGHOME", &self.gnupg)
            .args(["--batch", "--with-colons", "--list-keys"])
            .arg(format!("{name}@example.invalid")));
        let fpr = text(&o)
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_string())
            })
            .expect("a fingerprint");
        let out = self.path(&format!("{name}.pub"));
        let o = run(Command::new("gpg")
            .env("GNUPGHOME", &self.gnupg)
            .args(["--batch", "--export"])
            .arg(&fpr));
        std::fs::write(&out, &o.stdout).unwrap();
        (fpr, out)
    }

    /// A sigstore key pair (tests/sigstore-keygen.py): PREFIX.key, PREFIX.pub.
    fn sigstore_key(&self, name: &str) -> PathBuf {
        let prefix = self.path(name);
        run(Command::new(KEYGEN)
            .arg(&prefix)
            .arg(self.path("passphrase")));
        prefix.with_extension("pub")
    }

    /// Attach a sigstore signature of `image` by key `name`, naming
    /// `identity` (default: the image), beside `attach_to` (default: the
    /// image itself).
    fn sigstore_sign(
        &self,
        name: &str,
        image: &str,
        identity: Option<&str>,
        attach_to: Option<&str>,
    ) {
        let (repo, _) = image.split_once(':').unwrap();
        let digest = self.digest(image);
        let mut c = Command::new(SIGN);
        c.arg(self.path(&format!("{name}.key")))
            .arg(self.path("passphrase"))
            .arg(format!("http://{}", self.reg.host))
            .arg(attach_to.map_or(repo, |a| a.split_once(':').unwrap().0))
            .arg(&digest)
            .arg(format!("{}/{}", self.reg.host, identity.unwrap_or(image)));
        if let Some(a) = attach_to {
            c.arg(self.digest(a));
        }
        run(&mut c);
    }

    fn push(&self, image: &str, dest: &str) {
        run(Command::new("bash")
            .arg(REGISTRY_SH)
            .arg("push")
            .arg(&self.reg.dir)
            .arg(image)
            .arg(dest));
    }

    /// `skopeo copy` inside the registry, signing with `fpr` if given.
    fn copy(&self, from: &str, to: &str, fpr: Option<&str>) {
        let mut c = Command::new("skopeo");
        c.env("GNUPGHOME", &self.gnupg)
            .args([
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--registries.d",
            ])
            .arg(&self.rd);
        if let Some(f) = fpr {
            c.args(["--sign-by", f]);
        }
        run(c
            .arg(format!("docker://{}/{from}", self.reg.host))
            .arg(format!("docker://{}/{to}", self.reg.host)));
    }

    fn digest(&self, image: &str) -> String {
        let o = run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{}/{image}", self.reg.host)));
        text(&o)
    }

    fn policy(&self, name: &str, json: String) -> PathBuf {
        let p = self.path(&format!("{name}.json"));
        std::fs::write(&p, json).unwrap();
        p
    }

    fn sigstore_signed(&self, key: &Path, identity: &str) -> String {
        format!(
            r#"[{{"type": "sigstoreSigned", "keyPath": "{}", "signedIdentity": {{"type": "{identity}"}}}}]"#,
            key.display()
        )
    }

    /// `docker://REGISTRY/IMAGE`, or IMAGE itself when it names another
    /// transport.
    fn spec(&self, image: &str) -> String {
        if image.starts_with("docker-archive:") || image.starts_with("oci:") {
            image.to_string()
        } else {
            format!("docker://{}/{image}", self.reg.host)
        }
    }

    fn signed_by(&self, key: &Path, identity: &str) -> String {
        format!(
            r#"[{{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "{}", "signedIdentity": {{"type": "{identity}"}}}}]"#,
            key.display()
        )
    }

    /// `syscontainer pull` into a fresh root; returns the output and the
    /// `images list --all --json` of that root afterwards.
    fn pull(
        &self,
        case: &str,
        policy: &Path,
        image: &str,
        extra: &[&str],
    ) -> (Output, serde_json::Value) {
        let root = self.path(&format!("root-{case}"));
        std::fs::create_dir_all(root.join("home")).unwrap();
        let cli = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_syscontainer"))
                .arg("--root")
                .arg(&root)
                .args(extra)
                .args(args)
                .env_remove("SYSCONTAINER_ROOT")
                .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
                .env("HOME", root.join("home"))
                .env("ATOMIC_OSTREE_REPO", "/repo")
                .output()
                .unwrap()
        };
        // Our docker-archive transport is spelled `dockertar:`.
        let spec = match image.strip_prefix("docker-archive:") {
            Some(path) => format!("dockertar:{path}"),
            None => self.spec(image),
        };
        let (p, rd) = (policy.to_str().unwrap(), self.rd.to_str().unwrap());
        let o = cli(&[
            "pull",
            "-q",
            "--tls-verify=false",
            "--signature-policy",
            p,
            "--registries.d",
            rd,
            &spec,
        ]);
        let l = cli(&["images", "list", "--all", "--json"]);
        assert!(l.status.success(), "{l:?}");
        (o, serde_json::from_slice(&l.stdout).unwrap())
    }

    /// `syscontainer ARGS` in the root of `case` (as [`pull`](Self::pull)
    /// makes it).
    fn sc(&self, case: &str, args: &[&str]) -> Output {
        let root = self.path(&format!("root-{case}"));
        std::fs::create_dir_all(root.join("home")).unwrap();
        Command::new(env!("CARGO_BIN_EXE_syscontainer"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .env_remove("SYSCONTAINER_ROOT")
            .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
            .env("HOME", root.join("home"))
            .env("ATOMIC_OSTREE_REPO", "/repo")
            .output()
            .unwrap()
    }

    /// Whether skopeo copies the image under the policy, and its stderr.
    fn skopeo_accepts(&self, case: &str, policy: &Path, image: &str) -> (bool, String) {
        let o = Command::new("skopeo")
            // oci: cannot store signatures; they are verified all the same.
            .args([
                "copy",
                "-q",
                "--remove-signatures",
                "--src-tls-verify=false",
                "--policy",
            ])
            .arg(policy)
            .arg("--registries.d")
            .arg(&self.rd)
            .arg(self.spec(image))
            .arg(format!(
                "oci:{}",
                self.path(&format!("skopeo-{case}")).display()
            ))
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

fn setup() -> Env {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("registry");
    std::fs::create_dir_all(&dir).unwrap();
    let o = run(Command::new("bash")
        .arg(REGISTRY_SH)
        .arg("start")
        .arg(&dir)
        .arg("plain"));
    let host = text(&o)
        .lines()
        .find_map(|l| l.strip_prefix("REGISTRY=").map(str::to_string))
        .expect("registry.sh start prints REGISTRY=");
    let reg = Registry { dir, host };
    let gnupg = t.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let rd = t.path().join("registries.d");
    std::fs::create_dir_all(&rd).unwrap();
    let sigs = t.path().join("sigs");
    std::fs::write(
        rd.join("test.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside: file://{s}\n    lookaside-staging: file://{s}\n    use-sigstore-attachments: true\n",
            reg.host,
            s = sigs.display()
        ),
    )
    .unwrap();
    let mut env = Env {
        t,
        reg,
        gnupg,
        key_a: PathBuf::new(),
        key_b: PathBuf::new(),
        skey_a: PathBuf::new(),
        skey_b: PathBuf::new(),
        rd,
    };
    std::fs::write(env.path("passphrase"), "sigstore test passphrase\n").unwrap();
    env.skey_a = env.sigstore_key("salice");
    env.skey_b = env.sigstore_key("sbob");
    let (fa, ka) = env.gpg_key("alice");
    let (fb, kb) = env.gpg_key("bob");
    env.key_a = ka;
    env.key_b = kb;
    env.push("hello", "sctest/base-hello:1");
    env.push("hello-v2", "sctest/unsigned:1");
    env.push("tiny", "sctest/base-tiny:1");
    env.push("hello-noreceiver", "sctest/copied:1");
    env.copy("sctest/base-hello:1", "sctest/signed:1", Some(&fa));
    // Same manifest, same repository, another tag: the signature names :1.
    env.copy("sctest/signed:1", "sctest/signed:2", None);
    env.copy("sctest/base-tiny:1", "sctest/other:1", Some(&fb));
    // A real signature, moved next to another image's digest.
    let signed = env.digest("sctest/signed:1");
    let copied = env.digest("sctest/copied:1");
    assert_ne!(signed, copied);
    let from = sigs.join(format!(
        "sctest/signed@{}/signature-1",
        signed.replace(':', "=")
    ));
    let to = sigs.join(format!("sctest/copied@{}", copied.replace(':', "=")));
    std::fs::create_dir_all(&to).unwrap();
    std::fs::copy(&from, to.join("signature-1"))
        .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    // Sigstore: the same cases, with attachments.
    env.copy("sctest/base-hello:1", "sctest/ssigned:1", None);
    env.sigstore_sign("salice", "sctest/ssigned:1", None, None);
    // Same manifest, same repository, another tag: the signature names :1.
    env.copy("sctest/ssigned:1", "sctest/ssigned:2", None);
    env.copy("sctest/base-tiny:1", "sctest/sother:1", None);
    env.sigstore_sign("sbob", "sctest/sother:1", None, None);
    // A real signature of ssigned:1, attached beside another image.
    env.copy("sctest/copied:1", "sctest/scopied:1", None);
    env.sigstore_sign(
        "salice",
        "sctest/ssigned:1",
        Some("sctest/scopied:1"),
        Some("sctest/scopied:1"),
    );
    // Local layouts: docker-archive and oci carry no signatures.
    run(Command::new("skopeo")
        .args(["copy", "-q", "--insecure-policy"])
        .arg(format!("docker-archive:{FIXTURES}/hello.tar"))
        .arg(format!("oci:{}:hello", env.path("layout").display())));
    env
}

#[test]
fn policies_accept_and_refuse_as_skopeo_does() {
    let env = setup();
    let h = env.reg.host.clone();
    let reject = r#"[{"type": "reject"}]"#;
    let accept = r#"[{"type": "insecureAcceptAnything"}]"#;
    let by_a = env.signed_by(&env.key_a, "matchRepoDigestOrExact");
    let by_a_repo = env.signed_by(&env.key_a, "matchRepository");
    let s_a = env.sigstore_signed(&env.skey_a, "matchRepoDigestOrExact");
    let s_a_repo = env.sigstore_signed(&env.skey_a, "matchRepository");
    let archive = format!("docker-archive:{FIXTURES}/hello.tar");
    let layout = format!("oci:{}:hello", env.path("layout").display());
    let policies = [
        (
            "one-scope",
            format!(
                r#"{{"default": {reject}, "transports": {{"docker": {{"{h}/sctest/unsigned": {accept}}}}}}}"#
            ),
        ),
        (
            "specific",
            format!(
                r#"{{"default": {accept}, "transports": {{"docker": {{"{h}/sctest": {reject}, "{h}/sctest/unsigned:1": {accept}}}}}}}"#
            ),
        ),
        ("insecure", format!(r#"{{"default": {accept}}}"#)),
        (
            "signed",
            format!(
                r#"{{"default": {reject}, "transports": {{"docker": {{"{h}/sctest": {by_a}}}}}}}"#
            ),
        ),
        (
            "signed-repo",
            format!(
                r#"{{"default": {reject}, "transports": {{"docker": {{"{h}": {by_a_repo}}}}}}}"#
            ),
        ),
        (
            "sigstore",
            format!(
                r#"{{"default": {reject}, "transports": {{"docker": {{"{h}/sctest": {s_a}}}}}}}"#
            ),
        ),
        (
            "sigstore-repo",
            format!(
                r#"{{"default": {reject}, "transports": {{"docker": {{"{h}": {s_a_repo}}}}}}}"#
            ),
        ),
        (
            "local-signed",
            format!(
                r#"{{"default": {accept}, "transports": {{"docker-archive": {{"": {by_a}}}, "oci": {{"": {by_a}}}}}}}"#
            ),
        ),
        (
            "local-sigstore",
            format!(
                r#"{{"default": {accept}, "transports": {{"docker-archive": {{"": {s_a}}}, "oci": {{"": {s_a}}}}}}}"#
            ),
        ),
        (
            "local-archive-only",
            format!(
                r#"{{"default": {reject}, "transports": {{"docker-archive": {{"": {accept}}}}}}}"#
            ),
        ),
    ];
    // (policy, image, accepted, what the refusal says)
    let cases: &[(&str, &str, bool, &str)] = &[
        ("sigstore", "sctest/ssigned:1", true, ""),
        ("sigstore", "sctest/unsigned:1", false, "no signature found"),
        // GPG-signed in the lookaside, but no sigstore attachment.
        ("sigstore", "sctest/signed:1", false, "no signature found"),
        (
            "sigstore",
            "sctest/sother:1",
            false,
            "not signed by any key",
        ),
        ("sigstore", "sctest/scopied:1", false, "digest mismatch"),
        ("sigstore", "sctest/ssigned:2", false, "identity mismatch"),
        ("sigstore-repo", "sctest/ssigned:2", true, ""),
        (
            "sigstore-repo",
            "sctest/sother:1",
            false,
            "not signed by any key",
        ),
        ("local-signed", &archive, false, "no signature found"),
        ("local-signed", &layout, false, "no signature found"),
        ("local-sigstore", &archive, false, "no signature found"),
        ("local-sigstore", &layout, false, "no signature found"),
        ("local-archive-only", &archive, true, ""),
        ("local-archive-only", &layout, false, "scope default"),
        ("one-scope", "sctest/unsigned:1", true, ""),
        ("one-scope", "sctest/signed:1", false, "scope default"),
        ("specific", "sctest/unsigned:1", true, ""),
        ("specific", "sctest/signed:1", false, "(reject)"),
        ("insecure", "sctest/copied:1", true, ""),
        ("signed", "sctest/signed:1", true, ""),
        ("signed", "sctest/unsigned:1", false, "no signature found"),
        ("signed", "sctest/other:1", false, "not signed by any key"),
        ("signed", "sctest/copied:1", false, "digest mismatch"),
        ("signed", "sctest/signed:2", false, "identity mismatch"),
        ("signed-repo", "sctest/signed:2", true, ""),
        (
            "signed-repo",
            "sctest/other:1",
            false,
            "not signed by any key",
        ),
    ];
    let mut failures = Vec::new();
    let mut unrefereed = Vec::new();
    for (i, (pol, image, accepted, why)) in cases.iter().enumerate() {
        let text = &policies.iter().find(|(n, _)| n == pol).unwrap().1;
        let p = env.policy(pol, text.clone());
        let case = format!("{i}-{pol}");
        let (mut skopeo, skopeo_err) = env.skopeo_accepts(&case, &p, image);
        if !skopeo && text.contains("sigstoreSigned") && skopeo_err.contains(SKOPEO_NO_SIGSTORE) {
            // This skopeo cannot verify sigstore at all: no referee.
            unrefereed.push(format!("{pol} {image}"));
            skopeo = *accepted;
        }
        let (o, listed) = env.pull(&case, &p, image, &[]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let ours = o.status.success();
        let nothing = listed.as_array().is_some_and(Vec::is_empty);
        if skopeo != *accepted || ours != *accepted {
            failures.push(format!(
                "{pol} {image}: expected {accepted}, skopeo {skopeo}, syscontainer {ours}: {err}"
            ));
            continue;
        }
        if !accepted {
            if o.status.code() != Some(3)
                || !err.contains(why)
                || !err.contains(image.trim_start_matches("docker-archive:"))
                || !nothing
            {
                failures.push(format!(
                    "{pol} {image}: exit {:?}, stored {listed}, stderr lacks '{why}' or the image: {err}",
                    o.status.code()
                ));
            }
        } else if nothing {
            failures.push(format!("{pol} {image}: accepted but nothing stored"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if !unrefereed.is_empty() {
        eprintln!(
            "skopeo answered '{SKOPEO_NO_SIGSTORE}' (Debian's build), so these rows had no referee: {}",
            unrefereed.join(", ")
        );
    }
}

#[test]
fn no_policy_file_is_today_behaviour_and_says_so_when_verbose() {
    let env = setup();
    let missing = env.path("no-such-policy.json");
    let (o, listed) = env.pull("nopolicy", &missing, "sctest/unsigned:1", &["--verbose"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        err.matches("no signature policy is in force").count(),
        1,
        "{err}"
    );
}

#[test]
fn an_unknown_requirement_type_is_refused_before_pulling() {
    let env = setup();
    let p = env.policy("bad", r#"{"default": [{"type": "acceptIfNice"}]}"#.into());
    let (o, listed) = env.pull("bad", &p, "sctest/unsigned:1", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("acceptIfNice") && err.contains(p.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(listed, serde_json::json!([]));
    // Keyless sigstore is refused as not supported, never read as "accept".
    let p = env.policy(
        "keyless",
        r#"{"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/ca.pem", "oidcIssuer": "https://issuer.example", "subjectEmail": "a@example.com"}, "rekorPublicKeyPath": "/rekor.pub"}]}"#.into(),
    );
    let (o, listed) = env.pull("keyless", &p, "sctest/ssigned:1", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("Fulcio/Rekor (keyless) verification is not supported")
            && err.contains(p.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(listed, serde_json::json!([]));
}

#[test]
fn stored_signatures_are_rechecked_by_verify_and_by_an_install_without_pull() {
    let env = setup();
    let h = env.reg.host.clone();
    let reject = r#"[{"type": "reject"}]"#;
    let both = env.policy(
        "both",
        format!(
            r#"{{"default": {reject}, "transports": {{"docker": {{"{h}/sctest/ssigned": {}, "{h}/sctest/signed": {}}}}}}}"#,
            env.sigstore_signed(&env.skey_a, "matchRepoDigestOrExact"),
            env.signed_by(&env.key_a, "matchRepoDigestOrExact")
        ),
    );
    let bob = env.policy(
        "bob",
        format!(
            r#"{{"default": {}}}"#,
            env.sigstore_signed(&env.skey_b, "matchRepository")
        ),
    );
    for image in ["sctest/ssigned:1", "sctest/signed:1"] {
        let (o, _) = env.pull("re", &both, image, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let rd = env.rd.to_str().unwrap();
    let verify = |policy: &Path, extra: &[&str]| {
        let mut a = vec![
            "images",
            "verify",
            "--signature-policy",
            policy.to_str().unwrap(),
            "--registries.d",
            rd,
        ];
        a.extend_from_slice(extra);
        env.sc("re", &a)
    };
    // The policy they were pulled under accepts both, offline: stop the
    // registry first.
    let _ = Command::new("bash")
        .arg(REGISTRY_SH)
        .arg("stop")
        .arg(&env.reg.dir)
        .output();
    let o = verify(&both, &["--all"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for image in ["sctest/ssigned:1", "sctest/signed:1"] {
        assert!(
            out.contains(&format!("{h}/{image}: signatures accepted by the policy")),
            "{out}"
        );
    }
    // Another policy: per image, refused with the reason; exit 3.
    let o = verify(&bob, &["--all", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for r in rows {
        assert_eq!(r["signatures"]["accepted"], false, "{r}");
        let why = r["signatures"]["reason"].as_str().unwrap();
        let want = if r["name"].as_str().unwrap().contains("ssigned") {
            "not signed by any key"
        } else {
            // Only GPG signatures were kept for this one.
            "no signature found"
        };
        assert!(why.contains(want), "{r}");
    }
    // An install of a stored image checks the policy in force: refused,
    // naming image, scope and reason; nothing installed.
    let name = format!("{h}/sctest/ssigned:1");
    let pol = bob.to_str().unwrap();
    let o = env.sc(
        "re",
        &[
            "install",
            "--signature-policy",
            pol,
            "--registries.d",
            rd,
            "--name",
            "web",
            &name,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&name)
            && err.contains("scope default")
            && err.contains("not signed by any key"),
        "{err}"
    );
    let l = env.sc("re", &["containers", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&l.stdout).unwrap(),
        serde_json::json!([]),
        "{}",
        String::from_utf8_lossy(&l.stderr)
    );
    // Under the policy it was pulled with, the same install goes ahead.
    let o = env.sc(
        "re",
        &[
            "install",
            "--signature-policy",
            both.to_str().unwrap(),
            "--registries.d",
            rd,
            "--name",
            "web",
            &name,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
