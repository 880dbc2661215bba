//! Work that must finish after the answer is sent (`waitUntil`), for both kinds of event
//! context: a fetch's `Context` and a cron trigger's `ScheduleContext`.

use std::future::Future;
use std::pin::Pin;
use worker::{Context, ScheduleContext};

pub type Task = Pin<Box<dyn Future<Output = ()>>>;

pub trait Background {
    fn spawn(&self, task: Task);
}

impl Background for Context {
    fn spawn(&self, task: Task) {
        self.wait_until(task);
    }
}

impl Background for ScheduleContext {
    fn spawn(&self, task: Task) {
        self.wait_until(task);
    }
}
