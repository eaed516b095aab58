import ArgumentParser
import Backbone
import Data
import Foundation
import Numerics
import PEFT
import Support
import Training

/// `causal-tune features --config FILE [--checkpoint CKPT] --out FILE.h5 [--layers 0,11] IMAGE...`
///
/// Writes the feature dump of SPEC §7 for PNG/JPEG inputs (resized bilinearly to
/// `model.backbone.image_size`, normalised as SPEC §6). With `model.peft.method: none` the
/// bare backbone runs and the dump holds `/image` and `/layer_<ii>/spatial`; with
/// `causal_tune` or `rein` the Causal-Tune layer runs after every block (its parameters from
/// the checkpoint's `/params/peft/*`, else the seeded initialisation) and the dump adds
/// `/layer_<ii>/{spectrum,causal,refined,band_energy}` and `/mask`.
struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features",
        abstract: "Dump per-layer features of images to HDF5 (SPEC §7).",
        discussion: """
        Layers default to every block; --layers 0,11 selects. Under mpirun only rank 0 \
        computes and writes. A --checkpoint with a /backbone group (saved --with-backbone) \
        supplies the backbone weights instead of model.backbone.weights.
        """
    )

    @Option(help: "Experiment config (YAML).") var config: String
    @Option(help: "Checkpoint (HDF5) with trained parameters.") var checkpoint: String?
    @Option(help: "Output HDF5 file.") var out: String
    @Option(help: "Comma-separated block indices (default: all).") var layers: String?
    @Argument(help: "Input images (PNG or JPEG).") var images: [String] = []

    func run() throws {
        if FeaturesCommand.nonRootRank { return }
        do {
            let cfg = try ExperimentConfig.load(path: config)
            var settings = BackboneSettings(cfg)
            settings.recompute = false   // no backward here
            if let checkpoint, (try? WeightFile.detectFormat(checkpoint)) == .hdf5 {
                let file = try HDF5File.open(checkpoint)
                let hasBackbone = file.isGroup("backbone")
                try file.close()
                if hasBackbone { settings.weights = checkpoint }
            } else if let checkpoint {
                throw CausalTuneError("--checkpoint \(checkpoint): not an HDF5 checkpoint")
            }
            let peft = try CausalTuneOptions(cfg.model.peft)
            let model = try settings.makeBackbone()
            let selected = try FeatureExtraction.parseLayers(layers, depth: model.blocks.count)
            // Causal-Tune / Rein: the adapter (PEFT parameters from the checkpoint's
            // /params/peft/*) adds spectrum, causal, refined, band_energy and /mask.
            var hook: FeatureExtraction.LayerHook? = nil
            if let adapter = try CausalTuneAdapter.make(options: peft, layers: model.blocks.count, channels: model.channels,
                                                        patchSize: cfg.model.backbone.patchSize,
                                                        seed: UInt64(max(0, cfg.train.seed))) {
                if let checkpoint { try adapter.loadCheckpoint(checkpoint) }
                hook = CausalTuneFeatureDump.hook(adapter: adapter, model: model, layers: selected)
            }
            try FeatureExtraction.dump(model: model, images: images, layers: selected, config: cfg.yaml, to: out,
                                       load: { path in
                                           let image = try ImageIO.readRGB(path)
                                           return (image.pixels, image.width, image.height)
                                       }, hook: hook)
            print("features: \(images.count) image(s), layers \(selected.map(String.init).joined(separator: ",")), grid \(model.grid.h)x\(model.grid.w) → \(out)")
        } catch let e as CausalTuneError {
            fputs(e.message + "\n", stderr)
            throw ExitCode.failure
        }
    }

    /// Whether an MPI launcher started this process as a rank other than 0.
    static var nonRootRank: Bool {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"] {
            if let v = env[key], let r = Int(v) { return r != 0 }
        }
        return false
    }
}
