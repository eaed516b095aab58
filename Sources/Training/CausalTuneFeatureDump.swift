import Backbone
import Foundation
import PEFT

/// The Causal-Tune part of the feature dump (reference §Files), added to the backbone's
/// `/image` + `/layer_<ii>/spatial` through `FeatureExtraction.LayerHook`:
///
///     /layer_<ii>/spectrum     float32 [B, C, h, w]   T(spatial)
///     /layer_<ii>/causal       float32 [B, C, h, w]   M ⊙ spectrum
///     /layer_<ii>/refined      float32 [B, C, h, w]   patch tokens after PEFT (input of block ii+1)
///     /layer_<ii>/band_energy  float32 [B, 3]         energy fractions low / causal / high
///     /mask                    float32 [h, w]         the band-pass mask M
///     root attribute transform                        T's kind (dct, fft, haar, identity)
///
/// The adapter records these arrays during the backbone's ordinary forward
/// (`CausalTuneAdapter.recordFeatures`); the hook copies them into the file one image
/// (row) at a time. `band_energy` is defined in `FrequencyFilter` (docs/causal-tune-layer.md).
public enum CausalTuneFeatureDump {
    /// Attaches `adapter` to `model`, records `layers`, and returns the hook that writes
    /// the PEFT datasets.
    public static func hook(adapter: CausalTuneAdapter, model: any Backbone, layers: [Int]) -> FeatureExtraction.LayerHook {
        model.adapter = adapter
        adapter.recordFeatures = Set(layers)
        let grid = (h: model.grid.h, w: model.grid.w), c = model.channels
        return FeatureExtraction.LayerHook(
            create: { writer, layers in
                for l in layers {
                    for dataset in [FeatureDumpFormat.LayerDataset.spectrum, .causal, .refined] {
                        try writer.create(layer: l, dataset, rowShape: [c, grid.h, grid.w])
                    }
                    try writer.create(layer: l, .bandEnergy, rowShape: [3])
                }
                try writer.write(FeatureDumpFormat.mask, adapter.mask(grid: grid))
                try writer.setTransform(adapter.transformKind.rawValue)
            },
            write: { writer, layer, image in
                guard let f = adapter.recordedFeatures[layer] else {
                    preconditionFailure("Causal-Tune features of layer \(layer) were not recorded")
                }
                try writer.write(layer: layer, .spectrum, rows: f.spectrum, first: image)
                try writer.write(layer: layer, .causal, rows: f.causal, first: image)
                try writer.write(layer: layer, .refined, rows: f.refined, first: image)
                try writer.write(layer: layer, .bandEnergy, rows: f.bandEnergy, first: image)
            })
    }
}
