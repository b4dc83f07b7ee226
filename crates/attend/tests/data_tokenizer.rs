//! Tokenizers: round trips on real sentences, unknown handling, special ids, save/load.

use std::path::PathBuf;

use attend::data::bundled::load_bundled;
use attend::data::corpus::Split;
use attend::data::tokenizer::{
    Tokenizer, TokenizerError, TokenizerKind, Vocabs, BOS, EOS, PAD, SPECIAL_TOKENS, UNK,
};

fn scratch(test: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Both sides of the bundled English→French training data.
fn en_fr_texts() -> Vec<String> {
    let train = load_bundled("en-fr", Split::Train).unwrap();
    train.pairs.into_iter().flat_map(|(s, t)| [s, t]).collect()
}

/// Sentences with accents, guillemets, apostrophes, punctuation with and without a space before.
const SENTENCES: &[&str] = &[
    "J'ai trouvé le coffre des orcs ! Il est rempli d'or.",
    "I've found the orcs' chest! It's filled with gold.",
    "« Oublier » toutes les unités dans l'aide.",
    "Ça, c'est le garçon : où est-il ?",
    "(A) — commande d'admin",
    "Un chat noir.",
    "Well... 3,5 km (or 12-3) — isn't that \"far\"?",
];

#[test]
fn bpe_round_trips_real_sentences() {
    let tok = Tokenizer::train_bpe(en_fr_texts(), 4000).unwrap();
    assert_eq!(tok.vocab_size(), 4000);
    for s in SENTENCES {
        let ids = tok.encode(s).unwrap();
        assert!(!ids.is_empty());
        assert!(
            ids.iter()
                .all(|&id| id > UNK && (id as usize) < tok.vocab_size()),
            "{s}: {ids:?}"
        );
        assert_eq!(tok.decode(&ids), *s);
    }
    // Punctuation is split from words, and BPE merges frequent words whole.
    let pieces: Vec<String> = tok
        .encode("Un chat noir.")
        .unwrap()
        .iter()
        .map(|&i| tok.token(i))
        .collect();
    assert_eq!(pieces.last().map(String::as_str), Some("."));
    assert!(pieces.contains(&"▁chat".to_string()), "{pieces:?}");
}

#[test]
fn word_level_round_trips_and_maps_unknown_words_to_unk() {
    let tok = Tokenizer::train_word(en_fr_texts(), 1, 50_000).unwrap();
    for s in SENTENCES.iter().take(4) {
        assert_eq!(tok.decode(&tok.encode(s).unwrap()), *s);
    }
    let ids = tok.encode("Un chat zzyzx.").unwrap();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[2], UNK);
    assert_eq!(tok.decode(&ids), "Un chat <unk>.");
    // min_freq and max_size bound the vocabulary; the most frequent tokens come first.
    let small = Tokenizer::train_word(en_fr_texts(), 1, 100).unwrap();
    assert_eq!(small.vocab_size(), 100);
    assert_eq!(small.token(4), "."); // the most frequent piece
    let frequent = Tokenizer::train_word(en_fr_texts(), 50, 50_000).unwrap();
    assert!(frequent.vocab_size() < tok.vocab_size() / 10);
}

#[test]
fn unknown_characters_become_unk_and_show_as_unk() {
    let tok = Tokenizer::train_bpe(["un chat noir", "le chien blanc"], 40).unwrap();
    let ids = tok.encode("un chat 🐉").unwrap();
    assert!(ids.contains(&UNK), "{ids:?}");
    assert_eq!(tok.decode(&ids), "un chat <unk>");
    // Out-of-range ids display as <unk> instead of failing.
    assert_eq!(tok.token(1_000_000), "<unk>");
}

#[test]
fn special_tokens_have_fixed_ids_and_decode_skips_pad_bos_eos() {
    let tok = Tokenizer::train_bpe(["a black cat", "un chat noir"], 60).unwrap();
    for (id, t) in SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tok.token(id as u32), *t);
        assert_eq!(tok.token_id(t), Some(id as u32));
    }
    let ids = tok.encode("un chat noir").unwrap();
    let mut framed = vec![BOS];
    framed.extend(&ids);
    framed.extend([EOS, PAD, PAD]);
    assert_eq!(tok.decode(&framed), "un chat noir");
    // encode adds no BOS/EOS.
    assert!(!ids.contains(&BOS) && !ids.contains(&EOS));
}

#[test]
fn save_load_gives_identical_ids() {
    let dir = scratch("save");
    for kind in [
        TokenizerKind::Bpe { vocab_size: 2000 },
        TokenizerKind::Word {
            min_freq: 2,
            max_size: 5000,
        },
    ] {
        let tok = Tokenizer::train(&kind, en_fr_texts()).unwrap();
        let path = dir.join("tokenizer.json");
        tok.save(&path).unwrap();
        let loaded = Tokenizer::load(&path).unwrap();
        assert_eq!(loaded.vocab_size(), tok.vocab_size());
        for s in SENTENCES {
            assert_eq!(
                loaded.encode(s).unwrap(),
                tok.encode(s).unwrap(),
                "{kind:?}: {s}"
            );
        }
    }
}

#[test]
fn training_is_deterministic() {
    let a = Tokenizer::train_bpe(en_fr_texts(), 1000).unwrap();
    let b = Tokenizer::train_bpe(en_fr_texts(), 1000).unwrap();
    for id in 0..1000 {
        assert_eq!(a.token(id), b.token(id));
    }
}

#[test]
fn joint_and_separate_vocabularies() {
    let pairs = load_bundled("en-fr", Split::Train).unwrap().pairs;
    let kind = TokenizerKind::Bpe { vocab_size: 1500 };
    let joint = Vocabs::train(&kind, &pairs, true).unwrap();
    assert_eq!(
        joint.src.encode("chat noir").unwrap(),
        joint.tgt.encode("chat noir").unwrap()
    );
    let separate = Vocabs::train(&kind, &pairs, false).unwrap();
    // The English tokenizer has no merge for a French-only word that the French one has.
    let fr_word = "▁toutes";
    assert!(separate.tgt.token_id(fr_word).is_some());
    assert!(separate.src.token_id(fr_word).is_none());

    let dir = scratch("vocabs");
    separate.save(&dir).unwrap();
    let loaded = Vocabs::load(&dir).unwrap();
    let s = "I've found the orcs' chest!";
    assert_eq!(
        loaded.src.encode(s).unwrap(),
        separate.src.encode(s).unwrap()
    );
    assert_eq!(
        loaded.tgt.encode(s).unwrap(),
        separate.tgt.encode(s).unwrap()
    );
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(
        Tokenizer::train_bpe(Vec::<String>::new(), 100),
        Err(TokenizerError::NoText)
    ));
    assert!(matches!(
        Tokenizer::train_bpe(["a b"], 4),
        Err(TokenizerError::VocabTooSmall(4))
    ));
    assert!(matches!(
        Tokenizer::train_word(["a b"], 1, 3),
        Err(TokenizerError::VocabTooSmall(3))
    ));
    let dir = scratch("bad");
    let missing = dir.join("nope.json");
    let err = Tokenizer::load(&missing).unwrap_err();
    assert!(matches!(err, TokenizerError::Load { .. }) && err.to_string().contains("nope.json"));
    // A valid tokenizer file whose special tokens are elsewhere is refused.
    let tok = Tokenizer::train_bpe(["a black cat"], 30).unwrap();
    let path = dir.join("tok.json");
    tok.save(&path).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("<pad>", "[PAD]");
    std::fs::write(&path, text).unwrap();
    let err = Tokenizer::load(&path).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::SpecialIds {
                token: "<pad>",
                found: None,
                expected: 0,
                ..
            }
        ),
        "{err:?}"
    );
}
