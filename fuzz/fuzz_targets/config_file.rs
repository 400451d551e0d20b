//! The config file parser (`config::Config::parse`: TOML, then the `SINEW_*` overrides, then
//! validation).
//!
//! Input: the file's text, then optionally a NUL byte and `NAME=value` lines read as environment
//! variables (names get the `SINEW_` prefix when they lack it).
//!
//! Checked: no panic; a config that loads is valid again when serialized back to TOML and
//! parsed (its apps have unique ids and keys).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinew::config::Config;

fuzz_target!(|data: &[u8]| {
    let (file, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(file) = std::str::from_utf8(file) else { return };
    let vars: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let k = if k.starts_with("SINEW_") { k.to_string() } else { format!("SINEW_{k}") };
            (k, v.to_string())
        })
        .collect();
    let Ok(config) = Config::parse(file, vars) else { return };
    let mut ids = std::collections::HashSet::new();
    assert!(config.apps.iter().all(|a| ids.insert(a.id.clone())), "duplicate app ids accepted");
    if let Ok(text) = toml::to_string(&config)
        && let Err(e) = Config::parse(&text, Vec::new())
    {
        panic!("a loaded config does not load again: {e}\n{text}");
    }
});
