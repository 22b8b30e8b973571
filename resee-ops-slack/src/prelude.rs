//! Core's [prelude](resee_ops_core::prelude) plus the Slack notifier: `use resee_ops_slack::prelude::*;`.

pub use resee_ops_core::prelude::*;

pub use crate::{SlackConfig, SlackNotifier, WebhookUrl};
