//! `gavel connect`: a line-oriented WebSocket client for trying gavel by hand and in scripts.
//! Each stdin line is sent as one frame; each frame received is printed as one stdout line.
//! At the end of input it keeps printing for `--linger` so replies and events still arrive.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// Connects to `url` with `token`, pipes stdin to the socket and the socket to stdout.
pub async fn run(url: &str, token: &str, linger: Duration) -> anyhow::Result<()> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}{sep}token={token}"))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let (mut sink, mut stream) = ws.split();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    let mut input_open = true;
    let linger_until = tokio::time::sleep(Duration::MAX);
    tokio::pin!(linger_until);
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line? {
                Some(line) if line.trim().is_empty() => {}
                Some(line) => sink.send(Message::text(line)).await?,
                None => {
                    input_open = false;
                    linger_until.as_mut().reset(tokio::time::Instant::now() + linger);
                }
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    stdout.write_all(text.as_bytes()).await?;
                    stdout.write_all(b"\n").await?;
                    stdout.flush().await?;
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                    stdout.write_all(format!("{{\"closed\":{code},\"reason\":{reason:?}}}\n").as_bytes()).await?;
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            () = &mut linger_until => {
                let _ = sink.send(Message::Close(None)).await;
                return Ok(());
            }
        }
    }
}
