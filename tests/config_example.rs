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
