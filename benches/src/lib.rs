//! criterion benchmarks of gavel (engine, codec, fan-out) live in `benches/benches/`; this
//! library only holds shared fixtures. The engine issue adds the first benchmarks.
