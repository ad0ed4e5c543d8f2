//! The init's configuration (`/etc/imgbuild/init.conf`, the contract's
//! [`InitConfig`]) for a recipe: one for the initramfs, one for the root image.

use guest_contract::init_config::{InitConfig, NetConfig, Stage, StatusConfig};
use guest_contract::words::split_words;

use crate::kmods::ModuleSet;
use crate::recipe::Recipe;

/// The init's configuration for `stage`.
pub fn init_config(
    recipe: &Recipe,
    kver: &str,
    stage: Stage,
    stage1: &ModuleSet,
    stage2: &ModuleSet,
) -> InitConfig {
    // The recipe checked the words.
    let shell = split_words(&recipe.init.shell.value).unwrap_or_default();
    InitConfig {
        stage,
        kernel_version: kver.to_owned(),
        hostname: Some(recipe.guest.hostname.clone()),
        stage1_modules: stage1.load_order(),
        stage2_modules: stage2.load_order(),
        root_wait_secs: recipe.init.root_wait_secs,
        net: recipe
            .network
            .as_ref()
            .map(|n| NetConfig::guest(n.address, n.gateway, Some(n.mac))),
        shell,
        services: recipe
            .init
            .services
            .iter()
            .map(|s| s.value.clone())
            .collect(),
        status: StatusConfig {
            enabled: recipe.init.status_enabled,
            port: recipe.init.status_port,
        },
        ..InitConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use guest_contract::Mac;
    use guest_contract::init_config::Restart;

    use super::*;

    #[test]
    fn init_config_carries_the_recipe() {
        let r = Recipe::parse(
            Path::new("/r/g.toml"),
            r#"
[guest]
name = "g"
hostname = "h1"
[network]
address = "10.1.2.3/16"
gateway = "10.1.0.1"
mac = "00:16:3e:aa:bb:cc"
[init]
shell = "/bin/sh -l"
root_wait = 7
[[init.services]]
command = ["/sbin/syslogd", "-n"]
[[init.services]]
command = ["/bin/echo", "hello world"]
restart = "once"
[init.status]
enabled = false
port = 6000
"#,
        )
        .unwrap();
        let s1 = ModuleSet::fake(&["kernel/a.ko"]);
        let s2 = ModuleSet::fake(&["kernel/b.ko", "kernel/c.ko"]);
        let c = init_config(&r, "6.1.0-9-amd64", Stage::Root, &s1, &s2);
        // What the init will read back is what the recipe said.
        let back = InitConfig::parse(&c.render()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.stage, Stage::Root);
        assert_eq!(back.kernel_version, "6.1.0-9-amd64");
        assert_eq!(back.hostname.as_deref(), Some("h1"));
        assert_eq!(back.stage1_modules, ["kernel/a.ko"]);
        assert_eq!(back.stage2_modules, ["kernel/b.ko", "kernel/c.ko"]);
        assert_eq!(back.root_wait_secs, 7);
        assert_eq!(back.shell, ["/bin/sh", "-l"]);
        let net = back.net.unwrap();
        assert_eq!((net.iface.as_str(), net.address.prefix()), ("eth0", 16));
        assert_eq!(
            net.mac.map(Mac::octets),
            Some([0x00, 0x16, 0x3e, 0xaa, 0xbb, 0xcc])
        );
        assert_eq!(net.gateway, Some(std::net::Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(back.services.len(), 2);
        assert_eq!(back.services[0].restart, Restart::Respawn);
        assert_eq!(back.services[1].argv, ["/bin/echo", "hello world"]);
        assert_eq!(back.services[1].restart, Restart::Once);
        assert_eq!(
            back.status,
            StatusConfig {
                enabled: false,
                port: 6000
            }
        );
    }
}
