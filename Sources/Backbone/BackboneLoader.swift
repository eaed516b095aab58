import Config
import Core
import Foundation
import Numerics

/// What `model.backbone` in the config says (reference §Configuration), and building the backbone from it.
///
///     model.backbone: {arch: dinov2_vitl14, weights: PATH | random, image_size: 512,
///                      patch_size: null, recompute: false, normalize: imagenet,
///                      position_interpolation: bicubic}
///
/// `weights: random` gives the seeded random initialisation (`seed`, default 0); any other
/// value is a file in one of the formats `WeightFile` detects. `patch_size: null` is the
/// architecture's own. An EVA02 file decides its block layout (sub-LayerNorm or not).
public struct BackboneSettings: Equatable, Sendable {
    public var arch: String
    public var weights: String
    public var imageSize: Int
    public var patchSize: Int
    public var recompute: Bool
    public var seed: UInt64
    public var positionInterpolation: VisionTransformer.PositionInterpolation

    public init(arch: String, weights: String, imageSize: Int, patchSize: Int = 14, recompute: Bool = false, seed: UInt64 = 0,
                positionInterpolation: VisionTransformer.PositionInterpolation = .converter) {
        self.arch = arch
        self.weights = weights
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.recompute = recompute
        self.seed = seed
        self.positionInterpolation = positionInterpolation
    }

    /// `model.backbone` of a resolved config; `train.seed` seeds `weights: random`.
    public init(_ config: ExperimentConfig) {
        let b = config.model.backbone
        self.init(arch: b.arch, weights: b.weights, imageSize: b.imageSize, patchSize: b.patchSize,
                  recompute: b.recompute, seed: UInt64(Swift.max(0, config.train.seed)),
                  positionInterpolation: b.positionInterpolation == .bilinear ? .bilinear : .converter)
    }

    /// Builds the backbone: architecture from `arch`, grid from `image_size / patch_size`,
    /// weights read, checked and resampled (or randomised).
    public func makeBackbone() throws -> VisionTransformer {
        var architecture = try BackboneArchitecture.named(arch)
        guard patchSize > 0 && patchSize <= 64 else {
            throw CausalTuneError("model.backbone.patch_size: \(patchSize) is not a patch size (1…64)")
        }
        guard imageSize >= patchSize else {
            throw CausalTuneError("model.backbone.image_size: \(imageSize) is smaller than patch_size \(patchSize)")
        }
        if weights == "random" {
            let model = VisionTransformer(architecture: architecture, imageSize: imageSize, patchSize: patchSize, recompute: recompute)
            model.randomize(seed: seed)
            return model
        }
        let file = try BackboneWeights.read(weights, for: architecture)
        if architecture.family == .eva02 {
            // The released EVA02 sizes differ in layout; the file says which one it holds.
            architecture = try BackboneArchitecture.named(arch, eva02SubNorm: file.tensors["blocks.0.mlp.ffn_ln.weight"] != nil)
        }
        let model = VisionTransformer(architecture: architecture, imageSize: imageSize, patchSize: patchSize, recompute: recompute)
        try model.load(file, positionInterpolation: positionInterpolation)
        return model
    }
}

/// The network input of reference §Training: RGB bytes resized bilinearly (`align_corners=False`) to
/// `size × size` and normalised, by default with ImageNet's mean (123.675, 116.28, 103.53) and
/// std (58.395, 57.12, 57.375).
public enum NetworkInput {
    public static let mean: [Float] = ImageNormalization.imagenet.mean
    public static let std: [Float] = ImageNormalization.imagenet.std

    /// pixels: interleaved RGB, `height × width × 3` → [3, size, size] written into `output`
    /// (a [3, size, size] view, e.g. one image of a batch).
    public static func write(pixels: [UInt8], width: Int, height: Int, size: Int, into output: Tensor,
                             normalization: ImageNormalization = .imagenet) {
        precondition(pixels.count == width * height * 3 && output.count == 3 * size * size,
                     "NetworkInput: \(pixels.count) bytes for \(width)×\(height), output \(output.shape)")
        let planes = Tensor(zeros: [1, 3, height, width])
        pixels.withUnsafeBufferPointer { p in
            let d = planes.data, n = width * height
            for i in 0..<n {
                d[i] = Float(p[3 * i]); d[n + i] = Float(p[3 * i + 1]); d[2 * n + i] = Float(p[3 * i + 2])
            }
        }
        let target = output.reshaped([1, 3, size, size])
        if width == size && height == size {
            target.copy(from: planes)
        } else {
            Resample.bilinear(planes, into: target)
        }
        let n = size * size
        for c in 0..<3 {
            let d = target.data + c * n, m = normalization.mean[c], s = normalization.std[c]
            for i in 0..<n { d[i] = (d[i] - m) / s }
        }
    }
}
