import Foundation
import HDF5
import Numerics

/// The feature dump of `causal-tune features` (reference §Files), one HDF5 file:
///
///     /                    attrs: format = "causal-tune-features", version = 1, config (YAML),
///                                 images (input paths), grid = [h, w]
///     /image               float32 [B, 3, H, W]   the normalised network input
///     /layer_<ii>/spatial  float32 [B, C, h, w]   patch tokens after block ii, before PEFT
///     /layer_<ii>/<name>   float32 [B, ...]       further per-layer maps (PEFT: spectrum,
///                                                 causal, refined, band_energy)
///     /<name>              float32                whole-run arrays (PEFT: mask)
///
/// Datasets are created up front with their full `[B, ...]` shape and filled one image
/// (row) at a time, so a dump of many images never holds more than one image's features.
/// The file is written atomically by the caller (`HDF5File.writeAtomically`).
public final class FeatureDumpWriter {
    public let file: HDF5File
    public let imageCount: Int

    /// Writes the root attributes.
    public init(file: HDF5File, config: String, images: [String], grid: (h: Int, w: Int)) throws {
        self.file = file
        imageCount = images.count
        try file.setAttribute("format", .string("causal-tune-features"))
        try file.setAttribute("version", .int64(1))
        try file.setAttribute("config", .string(config))
        try file.setAttribute("images", .strings(images))
        try file.setAttribute("grid", .int64s([Int64(grid.h), Int64(grid.w)]))
    }

    /// `/layer_<ii>/<name>` (two-digit layer index).
    public static func layerPath(_ layer: Int, _ name: String) -> String {
        String(format: "layer_%02d/", layer) + name
    }

    /// Creates `/<path>` of shape `[imageCount] + rowShape`.
    public func create(_ path: String, rowShape: [Int]) throws {
        try file.createDataset(path, shape: [imageCount] + rowShape)
    }

    /// Writes rows `first ..< first + t.shape[0]` of `/<path>`.
    public func write(_ path: String, rows t: Tensor, first: Int) throws {
        try file.writeRows(t, to: path, firstRow: first)
    }

    /// Writes a whole dataset (`/mask` and the like).
    public func write(_ path: String, _ t: Tensor) throws {
        try file.write(t, to: path)
    }
}
