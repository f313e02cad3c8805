//! `flowhost resume [--watch MS]`: continue the participants that are due, once or on the
//! engine's scheduler until Ctrl-C.

use crate::output::print_participant;
use crate::setup;
use flowhost::config::OperatorConfig;
use flowhost::engine::scheduler::Scheduler;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Print journeys as JSON lines.
    #[arg(long)]
    json: bool,
    /// Keep going: resume due participants every MS milliseconds until interrupted
    /// (Ctrl-C), so waits, delivery windows, sending queues and retries are released on
    /// time without cron.
    #[arg(long, value_name = "MS")]
    watch: Option<u64>,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let Some(every_ms) = args.watch else {
        let runtime = setup::runtime(config).await?;
        let engine = runtime.engine();
        let resumed = engine.resume_due().await?;
        // And the requests without a response a stopped process left to send.
        engine.send_background().await?;
        engine.finish_background().await;
        if !args.json {
            println!("{} participants resumed", resumed.len());
        }
        for p in &resumed {
            print_participant(engine, p, args.json).await?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    // Each round of the scheduler loads the flows deployed since.
    let runtime = setup::runtime(config).await?;
    let engine = runtime.engine().clone();
    if !args.json {
        eprintln!("resuming due participants every {every_ms} ms; Ctrl-C stops");
    }
    // Rounds are printed as they finish, in order, by this task.
    let (rounds, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let scheduler = Scheduler::new(engine.clone(), Duration::from_millis(every_ms));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let loop_ = tokio::spawn(scheduler.run(shutdown, move |round| {
        let _ = rounds.send(round);
    }));
    while let Some(round) = finished.recv().await {
        for problem in &round.problems {
            eprintln!("warning: {problem}");
        }
        for p in &round.resumed {
            print_participant(&engine, p, args.json).await?;
        }
    }
    loop_.await?;
    Ok(ExitCode::SUCCESS)
}
