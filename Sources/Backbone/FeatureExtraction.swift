import Core
import Foundation
import HDF5
import Numerics

/// `causal-tune features`: runs images through the backbone one at a time and writes the
/// dump of reference §Files (`/image`, `/layer_<ii>/spatial`, root attributes; see
/// `FeatureDumpFormat`). A `LayerHook` lets PEFT add per-layer datasets (spectrum, causal,
/// refined, …) through the same writer.
public enum FeatureExtraction {
    /// RGB bytes of one image (interleaved, row-major) and its size.
    public typealias LoadedImage = (pixels: [UInt8], width: Int, height: Int)

    /// Hook for further per-layer datasets: called once before the first image to create
    /// datasets (`writer.create(...)`), then, after each image's forward (the adapter holds
    /// every layer's state), once per selected layer.
    public struct LayerHook {
        public var create: (FeatureDumpWriter, [Int]) throws -> Void
        public var write: (FeatureDumpWriter, _ layer: Int, _ image: Int) throws -> Void
        public init(create: @escaping (FeatureDumpWriter, [Int]) throws -> Void,
                    write: @escaping (FeatureDumpWriter, Int, Int) throws -> Void) {
            self.create = create
            self.write = write
        }
    }

    /// Parses `--layers 0,11` (nil: every block) and checks the indices.
    public static func parseLayers(_ text: String?, depth: Int) throws -> [Int] {
        guard let text, !text.isEmpty else { return Array(0..<depth) }
        var layers: [Int] = []
        for part in text.split(separator: ",") {
            let s = part.trimmingCharacters(in: .whitespaces)
            guard let i = Int(s), i >= 0, i < depth else {
                throw CausalTuneError("--layers: '\(s)' is not a block index in 0...\(depth - 1)")
            }
            if !layers.contains(i) { layers.append(i) }
        }
        return layers.sorted()
    }

    /// Writes the dump of `images` to `path` (atomically). `config` is the resolved YAML text.
    public static func dump(model: any Backbone, images: [String], layers: [Int], config: String, to path: String,
                            load: (String) throws -> LoadedImage, hook: LayerHook? = nil,
                            normalization: ImageNormalization = .imagenet) throws {
        guard !images.isEmpty else { throw CausalTuneError("features: no input images given") }
        let size = model.imageHeight, C = model.channels
        try HDF5File.writeAtomically(to: path) { file in
            let writer = try FeatureDumpWriter(file: file, config: config, images: images, grid: model.grid,
                                               normalization: normalization)
            try writer.create(FeatureDumpFormat.image, rowShape: [3, size, model.imageWidth])
            for l in layers {
                try writer.create(layer: l, .spatial, rowShape: [C, model.grid.h, model.grid.w])
            }
            try hook?.create(writer, layers)
            let input = Tensor(zeros: [1, 3, size, model.imageWidth])
            for (n, imagePath) in images.enumerated() {
                let image = try load(imagePath)
                NetworkInput.write(pixels: image.pixels, width: image.width, height: image.height, size: size,
                                   into: input.reshaped([3, size, model.imageWidth]), normalization: normalization)
                try writer.write(FeatureDumpFormat.image, rows: input, first: n)
                var failure: Error?
                model.forward(input, forBackward: false) { layer, tokens in
                    guard failure == nil, layers.contains(layer) else { return }
                    do {
                        try writer.write(layer: layer, .spatial, rows: model.spatialMap(tokens), first: n)
                    } catch {
                        failure = error
                    }
                }
                if let failure { throw failure }
                if let hook { for l in layers { try hook.write(writer, l, n) } }
            }
        }
    }
}
