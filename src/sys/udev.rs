//! udev's names under /dev/disk/by-*: the one place a label or UUID becomes
//! a path, so a label with a space resolves the same in every step.

/// `/dev/disk/by-<kind>/<name>`, with `name` encoded as udev encodes it.
pub fn disk_by(kind: &str, name: &str) -> String {
    format!("/dev/disk/by-{kind}/{}", udev_encode(name))
}

/// `disk_by("label", label)`.
pub fn by_label(label: &str) -> String {
    disk_by("label", label)
}

/// udev's encoding of a label in /dev/disk/by-label: anything but
/// alphanumerics and `#+-.:=@_` becomes `\xNN`.
fn udev_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_encoded_as_udev_does() {
        assert_eq!(by_label("SQFSRAID"), "/dev/disk/by-label/SQFSRAID");
        assert_eq!(by_label("My Disk"), "/dev/disk/by-label/My\\x20Disk");
        assert_eq!(disk_by("uuid", "a/b"), "/dev/disk/by-uuid/a\\x2fb");
    }
}
