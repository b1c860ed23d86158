//! Runs the `.slt` files against a running Quiver over the Postgres wire
//! protocol: `quiver-slt --url postgres://127.0.0.1:5433/quiver [FILE...]`.

use quiver_sqllogictests::{slt_files, PgDb};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut url = "postgres://quiver@127.0.0.1:5433/quiver".to_string();
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--url" {
            url = args.next().expect("--url needs a value");
        } else {
            files.push(std::path::PathBuf::from(arg));
        }
    }
    if files.is_empty() {
        files = slt_files();
    }
    let mut failed = 0;
    for file in &files {
        let url = url.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let url = url.clone();
            async move {
                PgDb::connect(&url)
                    .await
                    .map_err(|e| quiver_sqllogictests::DbError {
                        code: "08000".into(),
                        message: e.to_string(),
                    })
            }
        });
        match runner.run_file_async(file).await {
            Ok(()) => println!("ok   {}", file.display()),
            Err(e) => {
                failed += 1;
                println!("FAIL {}\n{e}", file.display());
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files failed", files.len());
        std::process::exit(1);
    }
    println!("all {} files passed over pgwire", files.len());
}
