//! Marian / OPUS-MT and Hugging Face `MarianMTModel` imports against Hugging Face itself: two small
//! models trained by `tools/golden/marian.sh` (every embedding tied; separate vocabularies with the
//! decoder's input and output tied), each read in both forms. The imported run directory must give
//! Hugging Face's logits within 1e-4 and the very tokens of its `generate`, greedy and beam 4, on
//! 60 sentences. Bad directories give errors naming the file at fault.

use attend::data::sentencepiece::SentencePiece;
use attend::import::{hf, marian, write_run};
use attend::nn::params::load_tensors;
use attend::search::{attended_len, greedy, hf_generate};
use attend::train::checkpoint::{load_model, LoadedModel};
use attend::translate::translate_ids;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures(variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/marian")
        .join(variant)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("attend-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Piece → Hugging Face id of a `vocab.json`.
fn hf_vocab(path: &Path) -> BTreeMap<String, u32> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A fixture model imported through `form` ("hf" or "marian") and loaded as `translate` loads it,
/// with the maps from Hugging Face ids to attend ids (source, target).
struct Imported {
    run: LoadedModel,
    src: Vec<u32>,
    tgt: Vec<u32>,
    expected: Value,
}

fn import(variant: &str, form: &str, test: &str) -> Imported {
    let dir = fixtures(variant).join(form);
    let model = match form {
        "hf" => hf::read(&dir),
        _ => marian::read(&dir),
    }
    .unwrap_or_else(|e| panic!("{variant}/{form}: {e}"));
    let out = temp_dir(&format!("{variant}-{form}-{test}"));
    write_run(model, &out).unwrap();
    let run = load_model(&out, "best").unwrap();
    let hf_dir = fixtures(variant).join("hf");
    let src_vocab = hf_vocab(&hf_dir.join("vocab.json"));
    let tgt_file = hf_dir.join("target_vocab.json");
    let tgt_vocab = if tgt_file.is_file() {
        hf_vocab(&tgt_file)
    } else {
        src_vocab.clone()
    };
    let map = |vocab: &BTreeMap<String, u32>, tok: &attend::data::tokenizer::Tokenizer| {
        let mut ids = vec![u32::MAX; vocab.len()];
        for (piece, &id) in vocab {
            ids[id as usize] = tok
                .token_id(piece)
                .unwrap_or_else(|| panic!("{piece} not imported"));
        }
        ids
    };
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures(variant).join("expected.json")).unwrap(),
    )
    .unwrap();
    Imported {
        src: map(&src_vocab, &run.vocabs.src),
        tgt: map(&tgt_vocab, &run.vocabs.tgt),
        run,
        expected,
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Hugging Face sources (`</s>` included) as attend ids (the model appends `</s>` itself).
fn sources(m: &Imported) -> Vec<Vec<u32>> {
    let eos = m.expected["eos"].as_u64().unwrap() as u32;
    m.expected["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut s = ids(s);
            assert_eq!(s.pop(), Some(eos));
            s.iter().map(|&i| m.src[i as usize]).collect()
        })
        .collect()
}

fn check_logits(variant: &str, form: &str) {
    let m = import(variant, form, "logits");
    let logits = load_tensors(&fixtures(variant).join("logits.safetensors")).unwrap();
    let t = m.run.model.as_transformer().unwrap();
    let srcs = sources(&m);
    let mut worst = 0.0f32;
    for (i, target) in m.expected["logit_targets"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let target = ids(target);
        // The decoder start (Hugging Face's pad) is attend's <s>.
        let tgt_in: Vec<u32> = std::iter::once(attend::data::tokenizer::BOS)
            .chain(target[1..].iter().map(|&i| m.tgt[i as usize]))
            .collect();
        let src = &srcs[i];
        let f = t
            .forward(
                src,
                &[src.len()],
                src.len(),
                &tgt_in,
                tgt_in.len(),
                None,
                false,
            )
            .unwrap();
        let got = f.logits.to_tensor();
        let want = &logits[&format!("logits.{i}")];
        let (steps, v) = (want.dim(0), want.dim(1));
        assert_eq!(
            got.shape(),
            &[1, steps, m.tgt.len() + 1],
            "{variant}/{form}"
        );
        for s in 0..steps {
            for hf_id in 0..v {
                let a = got.data()[s * got.dim(2) + m.tgt[hf_id] as usize];
                let b = want.data()[s * v + hf_id];
                worst = worst.max((a - b).abs());
            }
        }
    }
    assert!(worst < 1e-4, "{variant}/{form}: logits differ by {worst}");
}

fn check_generate(variant: &str, form: &str) {
    let mut m = import(variant, form, "generate");
    let srcs = sources(&m);
    assert!(srcs.len() >= 50);
    let max_length = m.expected["max_length"].as_u64().unwrap() as usize;
    // Hugging Face's max_length counts the decoder start.
    m.run.config.search.max_len_b = max_length - 1;
    let eos = m.expected["eos"].as_u64().unwrap() as u32;
    let penalty = m.expected["length_penalty"].as_f64().unwrap() as f32;
    for (key, beam) in [("greedy", 1), ("beam4", 4)] {
        let hyps = translate_ids(m.run.model.as_ref(), &srcs, &m.run.config, beam, penalty);
        let mut differ = Vec::new();
        for (i, (h, want)) in hyps
            .iter()
            .zip(m.expected[key].as_array().unwrap())
            .enumerate()
        {
            let mut want = ids(want);
            if want.last() == Some(&eos) {
                want.pop();
            }
            let want: Vec<u32> = want.iter().map(|&t| m.tgt[t as usize]).collect();
            if h.ids != want {
                differ.push(i);
            }
        }
        assert!(
            differ.is_empty(),
            "{variant}/{form} {key}: sentences {differ:?} differ from Hugging Face"
        );
    }
}

/// The attention a search records for an imported model covers the `</s>` it appends to every
/// source: one column more than the source, every row a distribution over them, in every search.
#[test]
fn recorded_attention_covers_the_appended_end_of_source() {
    let m = import("tied", "hf", "attention-eos");
    let srcs: Vec<Vec<u32>> = sources(&m).into_iter().take(8).collect();
    let model = m.run.model.as_ref();
    let lens: Vec<usize> = srcs.iter().map(Vec::len).collect();
    let max = lens.iter().copied().max().unwrap();
    let mut padded = vec![0u32; srcs.len() * max];
    for (row, s) in padded.chunks_mut(max).zip(&srcs) {
        row[..s.len()].copy_from_slice(s);
    }
    let limits = vec![20; srcs.len()];
    let searches = [
        (
            "hf greedy",
            hf_generate(model, (&padded, &lens, max), 1, 1.0, &limits),
        ),
        (
            "hf beam 4",
            hf_generate(model, (&padded, &lens, max), 4, 1.0, &limits),
        ),
        ("greedy", greedy(model, &padded, &lens, max, 20)),
    ];
    for (name, hyps) in searches {
        for (h, len) in hyps.iter().zip(&lens) {
            assert_eq!(attended_len(model, *len), len + 1);
            assert!(!h.attention.is_empty(), "{name}");
            for row in &h.attention {
                assert_eq!(row.len(), len + 1, "{name}: a column for </s>");
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-4, "{name}: row sums to {sum}");
            }
        }
    }
}

#[test]
fn hf_import_gives_hugging_face_logits() {
    check_logits("tied", "hf");
    check_logits("separate", "hf");
}

#[test]
fn marian_import_gives_hugging_face_logits() {
    check_logits("tied", "marian");
    check_logits("separate", "marian");
}

#[test]
fn hf_import_generates_what_hugging_face_generates() {
    check_generate("tied", "hf");
    check_generate("separate", "hf");
}

#[test]
fn marian_import_generates_what_hugging_face_generates() {
    check_generate("tied", "marian");
    check_generate("separate", "marian");
}

/// The English sentences `tools/golden/marian.py` encoded: the first 60 of the bundled test set
/// with 3 to 20 words.
fn fixture_sentences() -> Vec<String> {
    use std::io::Read;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/en-fr/test.tsv.gz");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .filter_map(|line| line.split('\t').next().filter(|_| line.contains('\t')))
        .filter(|src| (3..=20).contains(&src.split_whitespace().count()))
        .take(60)
        .map(str::to_string)
        .collect()
}

/// The run's tokenizers segment raw text into Hugging Face's source ids and decode its beam-4
/// outputs to the text the reference SentencePiece decode gives their pieces.
fn check_text(variant: &str, form: &str) {
    let m = import(variant, form, "text");
    let want = sources(&m);
    let texts = fixture_sentences();
    assert_eq!(texts.len(), want.len(), "{variant}/{form}");
    for (text, want) in texts.iter().zip(&want) {
        let got = m.run.vocabs.src.encode(text).unwrap();
        assert_eq!(&got, want, "{variant}/{form}: {text:?}");
    }
    let hf_dir = fixtures(variant).join("hf");
    let tgt_file = ["target_vocab.json", "vocab.json"]
        .map(|f| hf_dir.join(f))
        .into_iter()
        .find(|f| f.is_file())
        .unwrap();
    let tgt_vocab = hf_vocab(&tgt_file);
    let mut pieces = vec![String::new(); tgt_vocab.len()];
    for (piece, &id) in &tgt_vocab {
        pieces[id as usize] = piece.clone();
    }
    let spm = SentencePiece::load(hf_dir.join("target.spm")).unwrap();
    let eos = m.expected["eos"].as_u64().unwrap() as u32;
    let mut words = 0;
    for out in m.expected["beam4"].as_array().unwrap() {
        let out: Vec<u32> = ids(out).into_iter().filter(|&t| t != eos).collect();
        let reference =
            spm.decode_pieces(&out.iter().map(|&t| &pieces[t as usize]).collect::<Vec<_>>());
        let attend_ids: Vec<u32> = out.iter().map(|&t| m.tgt[t as usize]).collect();
        assert_eq!(
            m.run.vocabs.tgt.decode(&attend_ids),
            reference,
            "{variant}/{form}"
        );
        words += reference.split_whitespace().count();
    }
    assert!(
        words > 100,
        "{variant}/{form}: the outputs hold only {words} words"
    );
}

#[test]
fn imported_tokenizers_segment_and_decode_text_as_hugging_face_does() {
    check_text("tied", "hf");
    check_text("separate", "hf");
    check_text("tied", "marian");
    check_text("separate", "marian");
}

/// A copy of a fixture directory to break.
fn copy_of(variant: &str, form: &str, name: &str) -> PathBuf {
    let to = temp_dir(name);
    for e in std::fs::read_dir(fixtures(variant).join(form)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

fn message<T>(r: Result<T, attend::import::ImportError>) -> String {
    match r {
        Ok(_) => panic!("a broken directory was imported"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_file_is_named() {
    let empty = temp_dir("empty");
    assert!(message(hf::read(&empty)).contains("config.json"));
    assert!(message(marian::read(&empty)).contains("model.npz"));
    let dir = copy_of("tied", "hf", "no-weights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(message(hf::read(&dir)).contains("model.safetensors"));
    std::fs::write(dir.join("pytorch_model.bin"), b"pickle").unwrap();
    let m = message(hf::read(&dir));
    assert!(
        m.contains("pytorch_model.bin") && m.contains("save_pretrained"),
        "{m}"
    );
    let dir = copy_of("separate", "marian", "no-vocab");
    std::fs::remove_file(dir.join("vocab.trg.yml")).unwrap();
    assert!(message(marian::read(&dir)).contains("vocab.trg.yml"));
}

#[test]
fn a_missing_sentencepiece_model_is_named_before_anything_is_written() {
    let dir = copy_of("separate", "hf", "no-spm");
    std::fs::remove_file(dir.join("target.spm")).unwrap();
    let out = temp_dir("no-spm-run").join("run");
    let m = message(hf::read(&dir).and_then(|model| write_run(model, &out)));
    assert!(m.contains("target.spm"), "{m}");
    assert!(!out.exists(), "{m}");
}

#[test]
fn a_truncated_npz_is_named() {
    let dir = copy_of("tied", "marian", "truncated");
    let npz = dir.join("model.npz");
    let bytes = std::fs::read(&npz).unwrap();
    std::fs::write(&npz, &bytes[..bytes.len() / 2]).unwrap();
    let m = message(marian::read(&dir));
    assert!(m.contains("model.npz"), "{m}");
}

#[test]
fn another_architecture_is_refused_naming_config_json() {
    let dir = copy_of("tied", "hf", "bert");
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"marian\"", "\"bert\"")).unwrap();
    let m = message(hf::read(&dir));
    assert!(m.contains("config.json") && m.contains("bert"), "{m}");
}

#[test]
fn a_vocabulary_that_does_not_fit_the_weights_is_named() {
    let dir = copy_of("tied", "hf", "short-vocab");
    let path = dir.join("vocab.json");
    let mut vocab = hf_vocab(&path);
    vocab.remove("<pad>").unwrap();
    let last = vocab
        .iter()
        .max_by_key(|(_, &i)| i)
        .map(|(p, _)| p.clone())
        .unwrap();
    let id = vocab.remove(&last).unwrap();
    vocab.insert("<pad>".into(), id);
    std::fs::write(&path, serde_json::to_string(&vocab).unwrap()).unwrap();
    let out = temp_dir("short-vocab-run");
    let m = message(hf::read(&dir).and_then(|model| write_run(model, &out)));
    assert!(
        m.contains("vocab.json") && m.contains("model.safetensors"),
        "{m}"
    );

    let dir = copy_of("tied", "marian", "short-yml");
    let path = dir.join("vocab.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&path, lines[..lines.len() - 1].join("\n")).unwrap();
    let m = message(marian::read(&dir).and_then(|model| write_run(model, &out)));
    assert!(m.contains("vocab.yml") && m.contains("model.npz"), "{m}");
}
