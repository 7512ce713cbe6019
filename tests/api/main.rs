//! One integration-test binary: the real server over HTTPS on loopback.

mod device_code;
mod follower;
mod openapi;
mod properties;
mod helpers;
mod quirks;
mod restart;
mod sandbox;
mod sessions;
mod tokens;
mod tolerance;
mod walkthrough;
