import ArgumentParser
import Backbone
import Core
import Distributed
import Foundation
import HDF5
import PEFT
import Training

/// `causal-tune features --config FILE [--set key.path=value ...] [--checkpoint CKPT] --out FILE.h5
///                      [--layers 0,11] [--fit crop|stretch] IMAGE...`
///
/// Writes the feature dump of reference §Files for PNG/JPEG inputs (`--fit crop`, the default: the
/// centred square of side min(W, H), resized bilinearly to `model.backbone.image_size`;
/// `--fit stretch`: the whole image resized to the square — see `FeatureDumpInput`),
/// normalised as reference §Training. With `model.peft.method: none` the
/// bare backbone runs and the dump holds `/image` and `/layer_<ii>/spatial`; with
/// `causal_tune` or `rein` the Causal-Tune layer runs after every block (its parameters from
/// the checkpoint's `/params/peft/*`, else the seeded initialisation) and the dump adds
/// `/layer_<ii>/{spectrum,causal,refined,band_energy}` and `/mask`.
struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features",
        abstract: "Dump per-layer features of images to HDF5 (layout in docs/reference.md, Files).",
        discussion: """
        Layers default to every block; --layers 0,11 selects. The backbone's input is the \
        square image_size x image_size: by default (--fit crop) a non-square image gives its \
        centred square (aspect ratio kept, as evaluation's windows see it; the sides are left \
        out), --fit stretch resizes the whole image to the square instead. Under mpirun only \
        rank 0 computes and writes. A --checkpoint with a /backbone group (saved \
        --with-backbone) supplies the backbone weights instead of model.backbone.weights.
        """
    )

    @Option(help: "Experiment config (YAML).") var config: String
    @Option(name: .customLong("set"), help: "Override a config key: key.path=value (repeat --set for several).")
    var overrides: [String] = []
    @Option(help: "Checkpoint with trained parameters: our HDF5 file or a Rein / mmseg .pth.") var checkpoint: String?
    @Option(help: "Output HDF5 file.") var out: String
    @Option(help: "Comma-separated block indices (default: all).") var layers: String?
    @Option(help: ArgumentHelp("Non-square images: crop (the centred square) or stretch (the whole image).", valueName: "crop|stretch"))
    var fit: String = "crop"
    @Argument(help: "Input images (PNG or JPEG).") var images: [String] = []

    func run() throws {
        if Communicator.launchedAsNonRootRank() { return }
        do {
            guard let fitMode = FeatureDumpInput.Fit(rawValue: fit) else {
                throw CausalTuneError("--fit: '\(fit)' is not crop or stretch")
            }
            let cfg = try ExperimentConfig.load(path: config, overrides: overrides)
            try HDF5Preflight.check(.checkpoint(checkpoint), .weights(of: cfg))
            var settings = cfg.model.backbone
            settings.recompute = false   // no backward here
            if let checkpoint, (try? WeightFile.detectFormat(checkpoint)) == .hdf5 {
                let file = try HDF5File.open(checkpoint)
                let hasBackbone = file.isGroup(CheckpointLayout.backbone)
                try file.close()
                if hasBackbone { settings.weights = checkpoint }
            } else if let checkpoint, !ReinCheckpoint.handles(checkpoint) {
                throw CausalTuneError("--checkpoint \(checkpoint): not an HDF5 checkpoint")
            }
            let peft = cfg.model.peft
            let model = try settings.makeBackbone()
            let selected = try FeatureExtraction.parseLayers(layers, depth: model.depth)
            // The PEFT adapter (parameters from the checkpoint's /params/peft/*); Causal-Tune
            // and Rein add spectrum, causal, refined, band_energy and /mask.
            var hook: FeatureExtraction.LayerHook? = nil
            if let adapter = try PEFTRegistry.make(options: peft, layers: model.depth, channels: model.channels,
                                                   patchSize: cfg.model.backbone.patchSize,
                                                   seed: UInt64(max(0, cfg.train.seed))) {
                if let checkpoint, ReinCheckpoint.handles(checkpoint) {
                    // A Rein / mmseg .pth: its PEFT tensors (the head's are not needed here).
                    let values = try ReinCheckpoint.read(checkpoint, expected: adapter.trainableParameters.map { ($0.name, $0.parameter.value.shape) }, partial: true)
                    try adapter.loadParameters(from: checkpoint) { values[$0] }
                } else if let checkpoint { try adapter.loadCheckpoint(checkpoint) }
                hook = PEFTFeatureDump.hook(adapter: adapter, model: model, layers: selected)
            }
            try FeatureExtraction.dump(model: model, images: images, layers: selected, config: cfg.yaml, to: out,
                                       load: { try FeatureDumpInput.load($0, fit: fitMode) }, hook: hook,
                                       normalization: cfg.model.backbone.normalization)
            print("features: \(images.count) image(s), layers \(selected.map(String.init).joined(separator: ",")), grid \(model.grid.h)x\(model.grid.w) → \(out)")
        } catch let e as CausalTuneError {
            e.printToStandardError()
            throw ExitCode.failure
        }
    }
}
