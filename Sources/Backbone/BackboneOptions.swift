import Config
import Core
import Foundation
import Numerics

/// `model.backbone`: which frozen backbone, its weights, input size and preprocessing.
///
///     model.backbone: {arch: dinov2_vitl14, weights: PATH | random, image_size: 512,
///                      patch_size: null, recompute: false, normalize: imagenet,
///                      position_interpolation: bicubic}
///
/// `weights: random` gives the seeded random initialisation; any other value is a file in
/// one of the formats `WeightFile` detects. `patch_size: null` is the architecture's own.
/// An EVA02 file decides its block layout (sub-LayerNorm or not).
public struct BackboneOptions: Equatable, Sendable, Decodable {
    public var arch: String
    /// A weights file, or `random`.
    public var weights: String
    public var imageSize: Int
    /// `patch_size`, or (when null) the architecture's native patch size.
    public var patchSize: Int
    public var recompute: Bool
    /// The statistics images are normalised with (`normalize`: ImageNet's for every backbone,
    /// as Rein, or CLIP's own).
    public var normalization: ImageNormalization
    /// How the position grid is resized when the image size differs from the checkpoint's.
    public var positionInterpolation: VisionTransformer.PositionInterpolation
    /// Seeds `weights: random` (the experiment passes `train.seed`).
    public var seed: UInt64

    /// The largest `image_size` (pixels per side).
    public static let maxImageSize = 8192

    public static let schema: ConfigSchema = .map([
        "arch": .string("dinov2_vitl14"),
        "weights": .required(.string(nil)),       // a file, or `random`
        "image_size": .int(512, min: 1, max: maxImageSize),
        "patch_size": .int(nil, min: 1, max: 64),      // null: the architecture's own (14; *16: 16)
        "recompute": .bool(false),
        "normalize": .choice(ImageNormalization.names, default: "imagenet"),
        "position_interpolation": .choice([VisionTransformer.PositionInterpolation.converter.rawValue,
                                           VisionTransformer.PositionInterpolation.bilinear.rawValue], default: "bicubic"),
    ])

    public init(arch: String, weights: String, imageSize: Int, patchSize: Int = 14, recompute: Bool = false, seed: UInt64 = 0,
                normalization: ImageNormalization = .imagenet,
                positionInterpolation: VisionTransformer.PositionInterpolation = .converter) {
        self.arch = arch
        self.weights = weights
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.recompute = recompute
        self.seed = seed
        self.normalization = normalization
        self.positionInterpolation = positionInterpolation
    }

    private enum CodingKeys: String, CodingKey {
        case arch, weights, imageSize, patchSize, recompute, normalize, positionInterpolation
    }

    /// From the `model.backbone` section (checked against `schema`); `seed` is set by the
    /// experiment.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let arch = try c.decode(String.self, forKey: .arch)
        let name = try c.decode(String.self, forKey: .normalize)
        guard let normalization = ImageNormalization.named(name) else {
            throw DecodingError.dataCorruptedError(forKey: .normalize, in: c, debugDescription: "normalize: \(name)")
        }
        self.init(arch: arch, weights: try c.decode(String.self, forKey: .weights),
                  imageSize: try c.decode(Int.self, forKey: .imageSize),
                  patchSize: try c.decodeIfPresent(Int.self, forKey: .patchSize)
                      ?? (try? BackboneArchitecture.named(arch))?.nativePatchSize ?? 14,
                  recompute: try c.decode(Bool.self, forKey: .recompute), normalization: normalization,
                  positionInterpolation: try c.decode(VisionTransformer.PositionInterpolation.self, forKey: .positionInterpolation))
    }

    /// Whether `weights` is `random`.
    public var randomWeights: Bool { weights == "random" }

    /// Builds the backbone: architecture from `arch`, grid from `image_size / patch_size`,
    /// weights read, checked and resampled (or randomised).
    public func makeBackbone() throws -> any Backbone {
        var architecture = try BackboneArchitecture.named(arch)
        guard patchSize > 0 && patchSize <= 64 else {
            throw CausalTuneError("model.backbone.patch_size: \(patchSize) is not a patch size (1…64)")
        }
        guard imageSize >= patchSize else {
            throw CausalTuneError("model.backbone.image_size: \(imageSize) is smaller than patch_size \(patchSize)")
        }
        if weights == "random" {
            let model = BackboneRegistry.make(architecture, self)
            model.randomize(seed: seed)
            return model
        }
        let file = try BackboneWeights.read(weights, for: architecture)
        if architecture.family == .eva02 {
            // The released EVA02 sizes differ in layout; the file says which one it holds.
            architecture = try BackboneArchitecture.named(arch, eva02SubNorm: file.tensors["blocks.0.mlp.ffn_ln.weight"] != nil)
        }
        let model = BackboneRegistry.make(architecture, self)
        try model.load(file, positionInterpolation: positionInterpolation)
        return model
    }
}
