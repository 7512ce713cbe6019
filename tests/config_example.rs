//! The sample configuration file is valid and names every setting.

#[test]
fn the_example_configuration_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/restoregate.example.toml");
    let args = restoregate::config::ServeArgs { config: Some(path.into()), ..Default::default() };
    let s = restoregate::config::Settings::load(&args).expect("the example loads");
    assert!(!s.sandbox);
    assert_eq!(s.data_dir, std::path::PathBuf::from("/var/lib/restoregate"));
    assert_eq!(s.regions.len(), 5);
}

/// Every setting of the TOML file is in the example, with its default: a setting added to the
/// code but not to the example fails here.
#[test]
fn the_example_names_every_setting_with_its_default() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/restoregate.example.toml")).unwrap();
    let d = restoregate::config::Settings::defaults();
    for (name, default) in [
        ("session_idle_timeout_seconds", d.session_idle_timeout_seconds.to_string()),
        ("authority_polls_per_second", format!("{:.1}", d.authority_polls_per_second)),
        ("outbound_timeout_ms", d.outbound_timeout_ms.to_string()),
        ("follower_lease_seconds", d.follower_lease_seconds.to_string()),
        ("sandbox_poll_interval_seconds", d.sandbox_poll_interval_seconds.to_string()),
        ("sandbox_code_lifetime_seconds", d.sandbox_code_lifetime_seconds.to_string()),
        ("header_read_timeout_seconds", d.header_read_timeout_seconds.to_string()),
        ("body_read_timeout_seconds", d.body_read_timeout_seconds.to_string()),
        ("login_failures_per_address", d.login_failures_per_address.to_string()),
        ("login_failures_per_account", d.login_failures_per_account.to_string()),
        ("login_failure_window_seconds", d.login_failure_window_seconds.to_string()),
        ("login_concurrent_hashes", d.login_concurrent_hashes.to_string()),
        ("device_codes_per_user_per_minute", d.device_codes_per_user_per_minute.to_string()),
        ("pending_sign_ins_per_user", d.pending_sign_ins_per_user.to_string()),
        ("sandbox_wrong_codes_per_address", d.sandbox_wrong_codes_per_address.to_string()),
    ] {
        let line = format!("{name} = {default}");
        assert!(text.lines().any(|l| l.trim() == line), "deploy/restoregate.example.toml lacks `{line}`");
    }
    // And the README's Configuration table names each.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for name in ["header_read_timeout_seconds", "body_read_timeout_seconds", "login_failures_per_address", "login_failures_per_account",
        "login_failure_window_seconds", "login_concurrent_hashes", "device_codes_per_user_per_minute", "pending_sign_ins_per_user",
        "sandbox_wrong_codes_per_address"] {
        assert!(readme.contains(&format!("`{name}`")), "README.md's Configuration table lacks {name}");
    }
}
