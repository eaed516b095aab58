import Backbone
import PEFT

/// The PEFT part of a feature dump (`causal-tune features`, `output.dump_features`) for any
/// method, so the callers hold only an `any PEFTAdapter`.
public enum PEFTFeatureDump {
    /// Attaches `adapter` to `model` — every later block's input is the adapted tokens, so the
    /// backbone's `/layer_<ii>/spatial` needs it too — and returns the hook that writes the
    /// method's own datasets, or nil for a method that has none (the dump is then the
    /// backbone's datasets alone).
    public static func hook(adapter: any PEFTAdapter, model: any Backbone, layers: [Int]) -> FeatureExtraction.LayerHook? {
        model.adapter = adapter
        // The PEFT datasets (spectrum, causal, band energy, mask) are the Causal-Tune layer's
        // own arrays: this is the one place that needs the concrete type.
        guard let causalTune = adapter as? CausalTuneAdapter else { return nil }
        return CausalTuneFeatureDump.hook(adapter: causalTune, model: model, layers: layers)
    }

    /// Ends the recording `hook` started, for an adapter that keeps running (the trainer's).
    public static func stopRecording(_ adapter: any PEFTAdapter) {
        (adapter as? CausalTuneAdapter)?.recordFeatures = []
    }
}
