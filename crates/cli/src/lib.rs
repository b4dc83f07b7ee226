//! The attend application on top of the library (`attend`): the command line, the translation
//! server with its attention page, the benchmarks against the peers, and the reports. A program
//! that embeds the library depends on `attend` alone and compiles none of this.
//!
//! | module | what |
//! |---|---|
//! | [`cli`] | the `attend` command line: one file per command |
//! | [`serve`] | `attend serve`: HTTP translation with attention, and its page |
//! | [`bench`](mod@bench) | `attend bench`: the peers' benchmarks, same work, same JSON fields |
//! | [`report`] | `attend report`: BLEU by sentence length across models |
//! | [`fuzz_targets`] | every parser of outside input behind one bytes-in function, for `fuzz/` and the tests |

pub mod bench;
pub mod cli;
pub mod fuzz_targets;
pub mod report;
pub mod serve;
