import Core
import Foundation
import HDF5
import Numerics

/// The feature dump of `causal-tune features` (reference §Files), one HDF5 file:
///
///     /                    attrs: format = "causal-tune-features", version = 1, config (YAML),
///                                 images (input paths), grid = [h, w],
///                                 image_mean, image_std (3 × float64, the normalisation of /image),
///                                 transform (dct | fft | haar | identity, with the PEFT datasets)
///     /image               float32 [B, 3, H, W]   the normalised network input
///     /layer_<ii>/spatial  float32 [B, C, h, w]   patch tokens after block ii, before PEFT
///     /layer_<ii>/<name>   float32 [B, ...]       further per-layer maps (PEFT: spectrum,
///                                                 causal, refined, band_energy)
///     /mask                float32 [h, w]         the band-pass mask (PEFT)
///
/// Every writer (`FeatureDumpWriter`, the Causal-Tune hook) and reader (Visualization's
/// `FeatureDump`, `inspect`) takes the names from here. `image_mean`, `image_std` and
/// `transform` came later: a dump without them was normalised with ImageNet's statistics,
/// and its transform can only be recovered from the data.
public enum FeatureDumpFormat {
    public static let format = "causal-tune-features"
    public static let version: Int64 = 1

    /// Root attribute names.
    public enum Attribute {
        public static let format = "format"
        public static let version = "version"
        public static let config = "config"
        public static let images = "images"
        public static let grid = "grid"
        public static let imageMean = "image_mean"
        public static let imageStd = "image_std"
        public static let transform = "transform"
    }

    /// `/image`.
    public static let image = "image"
    /// `/mask`.
    public static let mask = "mask"

    /// The datasets of a `/layer_<ii>` group.
    public enum LayerDataset: String, CaseIterable, Sendable {
        case spatial, spectrum, causal, refined
        case bandEnergy = "band_energy"
    }

    static let layerPrefix = "layer_"

    /// The group of block `i`: `layer_<ii>`, two digits.
    public static func layerGroup(_ i: Int) -> String { String(format: "\(layerPrefix)%02d", i) }

    /// `layer_<ii>/<dataset>`.
    public static func layerPath(_ i: Int, _ dataset: LayerDataset) -> String { layerGroup(i) + "/" + dataset.rawValue }

    /// The block index of a group name `layer_<ii>`, or nil for any other name.
    public static func layerIndex(ofGroup name: String) -> Int? {
        guard name.hasPrefix(layerPrefix) else { return nil }
        return Int(name.dropFirst(layerPrefix.count))
    }

    /// The normalisation `/image` holds: the stored statistics, else ImageNet's (every dump
    /// written before they were stored used those).
    public static func normalization(of file: HDF5File) throws -> ImageNormalization {
        let hasMean = file.hasAttribute(Attribute.imageMean), hasStd = file.hasAttribute(Attribute.imageStd)
        guard hasMean || hasStd else { return .imagenet }
        let mean = try file.float64ArrayAttribute(Attribute.imageMean), std = try file.float64ArrayAttribute(Attribute.imageStd)
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }) else {
            throw CausalTuneError("\(file.path): root attributes \(Attribute.imageMean) \(mean), \(Attribute.imageStd) \(std) are not 3 channels with positive std")
        }
        return ImageNormalization(mean: mean.map(Float.init), std: std.map(Float.init))
    }

    /// The stored transform kind of the PEFT datasets, or nil for a dump written before it
    /// was stored (or without PEFT datasets).
    public static func transform(of file: HDF5File) throws -> String? {
        file.hasAttribute(Attribute.transform) ? try file.stringAttribute(Attribute.transform) : nil
    }
}
