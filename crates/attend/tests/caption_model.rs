//! The captioner on a tiny instance: every parameter's gradient (CNN, cell positions, attention,
//! LSTM, output, doubly stochastic penalty, the grid's self-attention block) against central finite
//! differences; attention rows are distributions over the grid; a captioner with the self-attention
//! block starts as the plain one; the shared search decodes through the image adapter, and beam
//! search with one beam equals greedy decoding.

use attend::caption::{Captioner, ImageRows};
use attend::config::Config;
use attend::data::batcher::Batch;
use tensor::{Rng, Tensor};

fn tiny_config() -> Config {
    tiny_config_with(&[])
}

/// The tiny config with the grid's self-attention block (attention size 2).
fn tiny_config_with_self_attention() -> Config {
    tiny_config_with(&[
        "caption.self_attention=true",
        "caption.self_attention_size=2",
    ])
}

fn tiny_config_with(extra: &[&str]) -> Config {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/caption-digits.toml"
    );
    let sets: Vec<String> = [
        "caption.image_height=8",
        "caption.image_width=12",
        "caption.conv_channels=[3, 4]",
        "model.captioner.embedding=4",
        "model.captioner.hidden=5",
        "model.captioner.attention_size=3",
        "model.captioner.dropout=0.0",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    Config::load(Some(std::path::Path::new(path)), &sets).unwrap()
}

fn tiny_batch() -> (Tensor, Batch) {
    let mut rng = Rng::new(5);
    let images = Tensor::uniform(&[2, 1, 8, 12], 0.0, 1.0, &mut rng);
    let (a, b): (&[u32], &[u32]) = (&[4, 5, 6], &[5]);
    let batch = Batch::new(&[(&[][..], a), (&[][..], b)], vec![0, 1]);
    (images, batch)
}

#[test]
fn every_parameter_gradient_matches_finite_differences() {
    let model = Captioner::new(&tiny_config(), 7, 3).unwrap();
    assert_eq!(model.grid(), (2, 3));
    assert_gradients_match(&model);
}

#[test]
fn every_gradient_matches_with_the_self_attention_block() {
    let model = Captioner::new(&tiny_config_with_self_attention(), 7, 3).unwrap();
    // γ away from 0, so that the block's projections matter to the loss.
    *model.self_attention().unwrap().gamma.value_mut() = Tensor::from_vec(vec![0.8], &[1]);
    assert!(model.params().get("cnn.self_attn.query.weight").is_some());
    assert_gradients_match(&model);
}

/// Checks up to six entries of every parameter's gradient against central differences.
fn assert_gradients_match(model: &Captioner) {
    let (images, batch) = tiny_batch();
    let lambda = 0.5;
    let loss_at = || tensor::no_grad(|| model.loss(&images, &batch, lambda, None).0.item() as f64);
    let (loss, _) = model.loss(&images, &batch, lambda, None);
    model.params().zero_grad();
    loss.backward();
    let mut rng = Rng::new(9);
    let h = 1e-2f32;
    let mut checked = 0;
    for (name, var) in model.params().iter() {
        let grad = var
            .grad()
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        let n = var.value().numel();
        for _ in 0..n.min(6) {
            let i = rng.below(n);
            let orig = var.value().data()[i];
            var.value_mut().data_mut()[i] = orig + h;
            let up = loss_at();
            var.value_mut().data_mut()[i] = orig - h;
            let down = loss_at();
            var.value_mut().data_mut()[i] = orig;
            let numeric = (up - down) / (2.0 * h as f64);
            let analytic = grad.data()[i] as f64;
            assert!(
                (analytic - numeric).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                "{name}[{i}]: analytic {analytic}, numeric {numeric}"
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} entries checked");
}

#[test]
fn the_self_attention_block_starts_as_the_plain_captioner() {
    let plain = Captioner::new(&tiny_config(), 7, 3).unwrap();
    let with = Captioner::new(&tiny_config_with_self_attention(), 7, 3).unwrap();
    assert_eq!(with.self_attention().unwrap().gamma(), 0.0);
    // The block's parameters come on top; every other one starts the same.
    assert_eq!(with.params().len(), plain.params().len() + 9);
    for (name, var) in plain.params().iter() {
        let other = with.params().get(name).unwrap();
        assert_eq!(var.value().data(), other.value().data(), "{name}");
    }
    let (images, batch) = tiny_batch();
    let (a, b) = tensor::no_grad(|| {
        (
            plain.forward(&images, &batch, None).logits.to_tensor(),
            with.forward(&images, &batch, None).logits.to_tensor(),
        )
    });
    assert_eq!(
        a.data(),
        b.data(),
        "γ = 0: exactly the plain captioner's logits"
    );
    // Its maps: one distribution over the 2×3 grid per cell and image.
    assert!(plain.self_attention_maps(&images).is_none());
    let maps = with.self_attention_maps(&images).unwrap();
    assert_eq!(maps.shape(), [2, 6, 6]);
    for row in maps.rows() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5 && row.iter().all(|&w| w >= 0.0));
    }
}

#[test]
fn attention_rows_are_distributions_over_the_grid() {
    let config = tiny_config();
    let model = Captioner::new(&config, 7, 3).unwrap();
    let (images, batch) = tiny_batch();
    let f = tensor::no_grad(|| model.forward(&images, &batch, None));
    assert_eq!(f.weights.shape(), [2, 4, 6]);
    assert_eq!(f.logits.shape(), [8, 7]);
    for row in f.weights.value().rows() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5 && row.iter().all(|&w| w >= 0.0));
    }
}

#[test]
fn the_shared_search_decodes_images_through_the_adapter() {
    let config = tiny_config();
    let model = Captioner::new(&config, 7, 4).unwrap();
    let mut rng = Rng::new(6);
    let images = Tensor::uniform(&[3, 1, 8, 12], 0.0, 1.0, &mut rng);
    let rows = ImageRows {
        model: &model,
        images: &images,
    };
    let greedy = rows.caption_all(1, 0.0, 5);
    let beam1 = rows.caption_all(2, 0.0, 5);
    assert_eq!(greedy.len(), 3);
    for h in &greedy {
        assert!(h.ids.len() <= 5);
        assert!(
            h.attention.iter().all(|a| a.len() == 6),
            "attention covers every grid cell"
        );
    }
    // A beam of 2 never scores below greedy.
    for (g, b) in greedy.iter().zip(&beam1) {
        if g.ids.len() < 5 {
            assert!(
                b.log_prob >= g.log_prob - 1e-4,
                "beam {} < greedy {}",
                b.log_prob,
                g.log_prob
            );
        }
    }
    // Each image is decoded on its own: captioning image 1 alone gives the same result.
    let one = images.select_rows(&[1]);
    let alone = ImageRows {
        model: &model,
        images: &one,
    }
    .caption_all(1, 0.0, 5);
    assert_eq!(alone[0].ids, greedy[1].ids);
}
