//! One integration-test binary: the real server over HTTPS on loopback.

mod device_code;
mod follower;
mod openapi;
mod ownership;
mod properties;
mod helpers;
mod limits;
mod metrics;
mod quirks;
mod restart;
mod sandbox;
mod secrets;
mod sessions;
mod tokens;
mod tolerance;
mod walkthrough;
