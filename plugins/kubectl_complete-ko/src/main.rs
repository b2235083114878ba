//! `kubectl_complete-ko`: kubectl (1.26+) runs it when a user presses TAB after `kubectl ko`,
//! with the words typed so far (the last one being completed), and reads cobra's answer:
//! one candidate per line, then `:<directive>`.

fn main() {
    let words: Vec<String> = std::env::args_os().skip(1).map(|w| w.to_string_lossy().into_owned()).collect();
    ko_core::output::result_bytes(ko_core::commands::completion::complete(&words).render().as_bytes());
}
