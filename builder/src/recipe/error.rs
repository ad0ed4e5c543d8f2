//! Recipe errors: every one names the recipe file, line, column and key.
//! Where in the TOML a serde error is ([`super::toml_place`]) and what it
//! means in the recipe's words ([`super::serde_words`]) are their own files.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::serde_words::{Expected, Found, SerdeError, missing, unknown, wrong_type};
use super::toml_place::{Place, place};

/// A position in the recipe text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl Loc {
    /// The line and column of byte offset `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Loc {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Loc { line, column }
    }
}

/// A recipe that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecipeError {
    /// The recipe file.
    pub file: PathBuf,
    /// Where in it (line 0 when the whole file is concerned).
    pub loc: Loc,
    /// The key concerned, dotted (`network.address`, `rootfs.files[1].dest`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.loc.line, self.key.is_empty()) {
            (0, true) => write!(f, "{file}: {}", self.message),
            (0, false) => write!(f, "{file}: key `{}`: {}", self.key, self.message),
            (_, true) => write!(
                f,
                "{file}:{}:{}: {}",
                self.loc.line, self.loc.column, self.message
            ),
            (_, false) => write!(
                f,
                "{file}:{}:{}: key `{}`: {}",
                self.loc.line, self.loc.column, self.key, self.message
            ),
        }
    }
}

/// Turns spans into located errors for one recipe file.
#[derive(Debug, Clone)]
pub struct Diag {
    file: PathBuf,
    text: String,
}

impl Diag {
    /// A diagnostic context for `file` whose contents are `text`.
    pub fn new(file: &Path, text: &str) -> Diag {
        Diag {
            file: file.to_path_buf(),
            text: text.to_owned(),
        }
    }

    /// The recipe file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The position of a span's start.
    pub fn loc(&self, span: &Range<usize>) -> Loc {
        Loc::of_offset(&self.text, span.start)
    }

    /// An error at `span` about `key`.
    pub fn at(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> RecipeError {
        self.at_loc(self.loc(span), key, message)
    }

    /// An error at a known location about `key`.
    pub fn at_loc(&self, loc: Loc, key: &str, message: impl Into<String>) -> RecipeError {
        RecipeError {
            file: self.file.clone(),
            loc,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// An error about the whole file.
    pub fn whole(&self, message: impl Into<String>) -> RecipeError {
        self.at_loc(Loc::default(), "", message)
    }

    /// The recipe text of `span` (empty if it is not in the text).
    pub fn text_at(&self, span: &Range<usize>) -> &str {
        self.text.get(span.clone()).unwrap_or("")
    }

    /// Converts a TOML parse or schema error, recovering the key from the
    /// text and saying what was expected in the recipe's words (not serde's).
    pub fn from_toml(&self, err: &toml::de::Error) -> RecipeError {
        let message = err.message().trim();
        match err.span() {
            Some(span) => {
                let place = place(&self.text, span.start);
                let (key, message) = self.recipe_words(&span, &place, message);
                self.at(&span, &key, message)
            }
            None => self.whole(message),
        }
    }

    /// Best-effort dotted key path for the byte offset `offset`: the enclosing
    /// `[table]` (with an index for `[[array]]` tables), the key and the keys
    /// of the inline tables around `offset`.
    pub fn key_at(&self, offset: usize) -> String {
        place(&self.text, offset).key()
    }

    /// The key and message for a serde error `message` at `span`.
    fn recipe_words(&self, span: &Range<usize>, place: &Place, message: &str) -> (String, String) {
        let mut key = place.key();
        let words = match SerdeError::parse(message) {
            SerdeError::InvalidType { found, expected }
            | SerdeError::InvalidValue { found, expected } => {
                let found = Found::parse(found, self.text_at(span), place.header);
                let expected = Expected::parse(expected);
                if place.header == Some(true) && expected == Expected::Table {
                    // `[[guest]]`: the table is `guest`, not an entry of it.
                    key = place.plain_key();
                }
                wrong_type(place, &found, &expected)
            }
            SerdeError::Missing(field) => return missing(place, field),
            SerdeError::Unknown { field, expected } => unknown(place, field, &expected),
            SerdeError::Other if message == "duplicate key" => {
                format!("{key} is given twice; give each key once")
            }
            SerdeError::Other => message.to_owned(),
        };
        (key, words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loc_counts_lines_and_columns() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(Loc::of_offset(t, 0), Loc { line: 1, column: 1 });
        assert_eq!(Loc::of_offset(t, 6), Loc { line: 2, column: 1 });
        assert_eq!(Loc::of_offset(t, 11), Loc { line: 2, column: 6 });
    }

    #[test]
    fn key_at_finds_table_and_key() {
        let t =
            "[guest]\nname = \"x\"\n[[rootfs.files]]\ndest = \"/a\"\n[[rootfs.files]]\nmode = 7\n";
        let d = Diag::new(Path::new("r.toml"), t);
        assert_eq!(d.key_at(t.find("\"x\"").unwrap()), "guest.name");
        assert_eq!(d.key_at(t.find("7").unwrap()), "rootfs.files[1].mode");
        assert_eq!(d.key_at(t.find("dest").unwrap()), "rootfs.files[0].dest");
    }

    #[test]
    fn key_at_reads_inline_tables_arrays_strings_and_comments() {
        let t = concat!(
            "# [not.a.table] = \"x\"\n",
            "[guest]\n",
            "name = \"a]b#c\" # a comment with = and [x]\n",
            "[inputs]\n",
            "kernel = { package = \"p\", version = \"v\" }\n",
            "[modules]\n",
            "load = [\n  \"a\", # one\n  7,\n]\n",
            "[[init.services]]\n",
            "command = [\"/x\"]\n",
            "[[init.services]]\n",
            "\"restart\" = 'once'\n",
            "[init]\n",
            "status.port = 9\n",
        );
        let d = Diag::new(Path::new("r.toml"), t);
        let at = |needle: &str| d.key_at(t.find(needle).unwrap());
        assert_eq!(at("\"a]b#c\""), "guest.name");
        assert_eq!(at("package"), "inputs.kernel.package");
        assert_eq!(at("\"v\""), "inputs.kernel.version");
        assert_eq!(at("7"), "modules.load");
        assert!(place(t, t.find("7").unwrap()).in_array);
        assert!(!place(t, t.find("\"p\"").unwrap()).in_array);
        assert_eq!(at("'once'"), "init.services[1].restart");
        assert_eq!(at("9"), "init.status.port");
        assert_eq!(at("[[init.services]]\n\"restart"), "init.services[1]");
        assert_eq!(
            place(t, t.find("[modules]").unwrap() + 1).header,
            Some(false)
        );
        // Arrays nested in arrays of tables count again in each entry.
        let t = "[[a]]\n[[a.b]]\n[[a.b]]\n[[a]]\n[[a.b]]\nx = 1\n";
        assert_eq!(
            Diag::new(Path::new("r.toml"), t).key_at(t.find('1').unwrap()),
            "a[1].b[0].x"
        );
    }

    /// Words of serde's, Rust's or this crate's types that must not reach
    /// the recipe's author.
    const NOT_RECIPE_WORDS: [&str; 12] = [
        "invalid type",
        "invalid value",
        "invalid length",
        "expected a ",
        "expected struct",
        "struct Raw",
        "sequence",
        "map,",
        "i64",
        "u32",
        "variant",
        "field `",
    ];

    /// A wrong type or shape for every key of every section: each names the
    /// key and says what to write, in the recipe's words.
    #[test]
    fn every_wrong_type_is_said_in_recipe_words() {
        const BASE: &str = "[guest]\nname = \"t\"\n";
        // (text after BASE, or the whole recipe when it has [guest] or
        // starts with `!`; key; words)
        let cases: &[(&str, &str, &str)] = &[
            (
                "[guest]\nname = 5\n",
                "guest.name",
                "guest.name is a string, not a number: write name = \"5\"",
            ),
            (
                "memory = true\n",
                "guest.memory",
                "guest.memory is a size with a unit, not `true`: write memory = \"512M\"",
            ),
            ("memory = 1.5\n", "guest.memory", "not the number 1.5"),
            (
                "vcpus = \"2\"\n",
                "guest.vcpus",
                "guest.vcpus is a whole number: write vcpus = 2 (without quotes)",
            ),
            (
                "vcpus = 2.5\n",
                "guest.vcpus",
                "guest.vcpus is a whole number, not 2.5: write vcpus = 2",
            ),
            (
                "vcpus = [2]\n",
                "guest.vcpus",
                "guest.vcpus is a whole number, not a list",
            ),
            (
                "vcpus = true\n",
                "guest.vcpus",
                "guest.vcpus is a whole number, not `true`",
            ),
            ("hostname = 5\n", "guest.hostname", "write hostname = \"5\""),
            (
                "hostname = [\"web\"]\n",
                "guest.hostname",
                "guest.hostname is a string, not a list: write hostname = \"web\"",
            ),
            (
                "hostname = 1979-05-27\n",
                "guest.hostname",
                "guest.hostname is a string, not a date: write hostname = \"1979-05-27\"",
            ),
            (
                "guest = \"t\"\n",
                "guest",
                "guest is a table, not a string: write [guest] and its keys on the lines below it",
            ),
            (
                "[[guest]]\nname = \"t\"\n",
                "guest",
                "guest is a table, not a list: write [guest] (single brackets)",
            ),
            (
                "guest = [\"t\", \"512M\", 1, \"h\"]\n",
                "guest",
                "guest is a table, not a list",
            ),
            (
                "[guest]\nvcpus = 1\n",
                "guest.name",
                "[guest] has no `name`, which is required",
            ),
            (
                "![xen]\nbridge = \"b\"\n",
                "guest",
                "the recipe has no [guest] table",
            ),
            (
                "rootfs = 5\n",
                "guest.rootfs",
                "unknown key `rootfs` in guest; expected one of name, memory, vcpus, hostname (`rootfs` is a section: write [rootfs] on a line of its own, after the keys of guest)",
            ),
            (
                "vcpus = 1\nvcpus = 2\n",
                "guest.vcpus",
                "guest.vcpus is given twice; give each key once",
            ),
            (
                "nmae = \"x\"\n",
                "guest.nmae",
                "unknown key `nmae` in guest; expected one of name, memory, vcpus, hostname (did you mean `name`?)",
            ),
            (
                "[inputs]\nkernel = 5\n",
                "inputs.kernel",
                "inputs.kernel is a package or a path, not a number",
            ),
            (
                "[inputs]\nbusybox = true\n",
                "inputs.busybox",
                "inputs.busybox is a package or a path, not `true`",
            ),
            (
                "[inputs]\nkernel = [\"linux-image-amd64\"]\n",
                "inputs.kernel",
                "inputs.kernel is a package or a path, not a list",
            ),
            (
                "[inputs]\nkernel = { pakage = \"x\" }\n",
                "inputs.kernel.pakage",
                "(did you mean `package`?)",
            ),
            (
                "[inputs]\nkernel = { path = 5 }\n",
                "inputs.kernel.path",
                "inputs.kernel.path is a string, not a number: write path = \"5\"",
            ),
            (
                "[inputs.kernel]\nversion = 1\n",
                "inputs.kernel.version",
                "write version = \"1\"",
            ),
            (
                "inputs = 5\n[guest]\nname = \"t\"\n",
                "inputs",
                "inputs is a table, not a number: write [inputs]",
            ),
            (
                "[inputs]\nkernal = \"x\"\n",
                "inputs.kernal",
                "unknown key `kernal` in inputs; expected kernel or busybox (did you mean `kernel`?)",
            ),
            (
                "[rootfs]\nsize = 5\n",
                "rootfs.size",
                "rootfs.size is a string, not a number: write size = \"5\"",
            ),
            (
                "[rootfs]\nlabel = true\n",
                "rootfs.label",
                "rootfs.label is a string, not `true`",
            ),
            (
                "[rootfs]\nfiles = \"x\"\n",
                "rootfs.files",
                "rootfs.files is a list of tables, not a string: write [[rootfs.files]] (double brackets) for each file",
            ),
            (
                "[rootfs]\nfiles = { dest = \"/a\" }\n",
                "rootfs.files",
                "rootfs.files is a list of tables: write [[rootfs.files]]",
            ),
            (
                "[rootfs]\nfiles = [1]\n",
                "rootfs.files",
                "rootfs.files is a list of tables; this item is a number",
            ),
            (
                "[[rootfs.files]]\ndest = 5\ntext = \"x\"\n",
                "rootfs.files[0].dest",
                "rootfs.files[0].dest is a string, not a number: write dest = \"5\"",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nsource = [\"a\"]\n",
                "rootfs.files[0].source",
                "write source = \"a\"",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\ntext = 5\n",
                "rootfs.files[0].text",
                "write text = \"5\"",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\ndirectory = 1\n",
                "rootfs.files[0].directory",
                "rootfs.files[0].directory is true or false: write directory = true (without quotes)",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nsymlink = true\n",
                "rootfs.files[0].symlink",
                "rootfs.files[0].symlink is a string, not `true`",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nchar_device = [5, 1]\n",
                "rootfs.files[0].char_device",
                "rootfs.files[0].char_device is a table, not a list: write char_device = { major = 5, minor = 1 }",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nblock_device = \"8:16\"\n",
                "rootfs.files[0].block_device",
                "write block_device = { major = 8, minor = 16 }",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nblock_device = { major = 8 }\n",
                "rootfs.files[0].block_device.minor",
                "rootfs.files[0].block_device has no `minor`, which is required",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nblock_device = { major = 8, minr = 0 }\n",
                "rootfs.files[0].block_device.minr",
                "expected major or minor (did you mean `minor`?)",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nchar_device = { major = 5, minor = 1.5 }\n",
                "rootfs.files[0].char_device.minor",
                "is a whole number, not 1.5",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nchar_device = { major = 5, minor = 99999999999 }\n",
                "rootfs.files[0].char_device.minor",
                "`99999999999` is out of range: rootfs.files[0].char_device.minor is a whole number from 0 to 4294967295",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nfifo = \"true\"\n",
                "rootfs.files[0].fifo",
                "write fifo = true (without quotes)",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nfifo = \"maybe\"\n",
                "rootfs.files[0].fifo",
                "rootfs.files[0].fifo is true or false, not a string: write fifo = true or fifo = false",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\nmode = true\n",
                "rootfs.files[0].mode",
                "mode is an octal string, not `true`: write mode = \"0644\"",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\nowner = 0\n",
                "rootfs.files[0].owner",
                "write owner = \"0\"",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\ntext = \"x\"\n[[rootfs.files]]\ndest = \"/b\"\ntext = 1\n",
                "rootfs.files[1].text",
                "rootfs.files[1].text is a string",
            ),
            (
                "[[rootfs.files]]\ntext = \"x\"\n",
                "rootfs.files[0].dest",
                "this [[rootfs.files]] entry has no `dest`, which is required",
            ),
            (
                "[[rootfs.files]]\ndest = \"/a\"\nsorce = \"x\"\n",
                "rootfs.files[0].sorce",
                "unknown key `sorce` in rootfs.files[0]; expected one of dest, source",
            ),
            (
                "[modules]\nload = \"virtio_net\"\n",
                "modules.load",
                "modules.load is a list: write load = [\"virtio_net\"]",
            ),
            (
                "[modules]\ninitramfs = { a = 1 }\n",
                "modules.initramfs",
                "modules.initramfs is a list, not a table",
            ),
            (
                "[modules]\nload = [\"a\",\n  7,\n]\n",
                "modules.load",
                "modules.load is a list of strings: write 7 as \"7\"",
            ),
            (
                "modules = [\"a\"]\n[guest]\nname = \"t\"\n",
                "modules",
                "modules is a table, not a list: write [modules] (single brackets)",
            ),
            (
                "[network]\naddress = 10\n",
                "network.address",
                "network.address is a string, not a number: write address = \"10\"",
            ),
            (
                "[network]\naddress = \"10.0.0.2/24\"\ngateway = [\"10.0.0.1\"]\n",
                "network.gateway",
                "write gateway = \"10.0.0.1\"",
            ),
            (
                "[network]\naddress = \"10.0.0.2/24\"\nmac = 12\n",
                "network.mac",
                "network.mac is a string, not a number",
            ),
            (
                "network = \"10.0.0.2/24\"\n[guest]\nname = \"t\"\n",
                "network",
                "network is a table, not a string: write [network]",
            ),
            (
                "[network]\ngateway = \"10.0.0.1\"\n",
                "network.address",
                "[network] has no `address`, which is required",
            ),
            (
                "[xen]\nbridge = 0\n",
                "xen.bridge",
                "xen.bridge is a string, not a number: write bridge = \"0\"",
            ),
            (
                "[xen]\non_crash = false\n",
                "xen.on_crash",
                "xen.on_crash is a string, not `false`",
            ),
            (
                "[xen]\ndisk_target = { a = 1 }\n",
                "xen.disk_target",
                "xen.disk_target is a string, not a table",
            ),
            (
                "[xen]\non_reboot = 1\n",
                "xen.on_reboot",
                "xen.on_reboot is a string, not a number",
            ),
            (
                "[init]\nshell = [\"/bin/sh\"]\n",
                "init.shell",
                "write shell = \"/bin/sh\"",
            ),
            (
                "[init]\nroot_wait = \"30\"\n",
                "init.root_wait",
                "init.root_wait is a whole number: write root_wait = 30 (without quotes)",
            ),
            (
                "[init]\nroot_wait = \"30s\"\n",
                "init.root_wait",
                "init.root_wait is a whole number, not a string: write root_wait = 30",
            ),
            (
                "[init]\nservices = \"x\"\n",
                "init.services",
                "init.services is a list of tables, not a string: write [[init.services]] (double brackets) for each service",
            ),
            (
                "[[init.services]]\ncommand = \"/sbin/syslogd -n\"\n",
                "init.services[0].command",
                "init.services[0].command is a list: write command = [\"/sbin/syslogd\", \"-n\"]",
            ),
            (
                "[[init.services]]\ncommand = [1]\n",
                "init.services[0].command",
                "init.services[0].command is a list of strings: write 1 as \"1\"",
            ),
            (
                "[[init.services]]\nrestart = \"once\"\n",
                "init.services[0].command",
                "this [[init.services]] entry has no `command`, which is required",
            ),
            (
                "[[init.services]]\ncommand = [\"/x\"]\nrestart = true\n",
                "init.services[0].restart",
                "init.services[0].restart is a string, not `true`",
            ),
            (
                "[init.status]\nenabled = \"yes\"\n",
                "init.status.enabled",
                "init.status.enabled is true or false: write enabled = true (without quotes)",
            ),
            (
                "[init.status]\nport = \"5115\"\n",
                "init.status.port",
                "write port = 5115 (without quotes)",
            ),
            (
                "[init]\nstatus = true\n",
                "init.status",
                "init.status is a table, not `true`: write [init.status]",
            ),
            (
                "[init]\nstatus.port = \"x\"\n",
                "init.status.port",
                "init.status.port is a whole number, not a string",
            ),
            (
                "[init.status]\nprot = 1\n",
                "init.status.prot",
                "unknown key `prot` in init.status; expected enabled or port (did you mean `port`?)",
            ),
            (
                "[[init.status]]\nport = 1\n",
                "init.status",
                "init.status is a table, not a list: write [init.status] (single brackets)",
            ),
        ];
        let mut failures = Vec::new();
        for (text, key, words) in cases {
            let text = match text.strip_prefix('!') {
                Some(full) => full.to_owned(),
                None if text.contains("[guest]") || text.contains("guest =") => (*text).to_owned(),
                None => format!("{BASE}{text}"),
            };
            let e = match crate::recipe::Recipe::parse(Path::new("/r/g.toml"), &text) {
                Ok(_) => {
                    failures.push(format!("{text:?}: accepted"));
                    continue;
                }
                Err(e) => e,
            };
            let serde_words: Vec<&str> = NOT_RECIPE_WORDS
                .iter()
                .copied()
                .filter(|w| e.message.contains(w))
                .collect();
            if e.key != *key
                || !e.message.contains(words)
                || e.loc.line == 0
                || !serde_words.is_empty()
            {
                failures.push(format!(
                    "{text:?}:\n    want key `{key}`: …{words}…\n    got  {e}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {}:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn display_names_file_line_column_key() {
        let d = Diag::new(Path::new("r.toml"), "a\nbc = 1");
        let e = d.at(&(5..6), "x.bc", "bad");
        assert_eq!(e.to_string(), "r.toml:2:4: key `x.bc`: bad");
    }
}
