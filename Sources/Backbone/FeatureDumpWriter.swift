import Foundation
import HDF5
import Numerics

/// Writes a feature dump (layout and names: `FeatureDumpFormat`).
///
/// Datasets are created up front with their full `[B, ...]` shape and filled one image
/// (row) at a time, so a dump of many images never holds more than one image's features.
/// The file is written atomically by the caller (`HDF5File.writeAtomically`).
public final class FeatureDumpWriter {
    public let file: HDF5File
    public let imageCount: Int

    /// Writes the root attributes; `normalization` is the one `/image` is written with.
    public init(file: HDF5File, config: String, images: [String], grid: (h: Int, w: Int),
                normalization: ImageNormalization) throws {
        self.file = file
        imageCount = images.count
        typealias A = FeatureDumpFormat.Attribute
        try file.setAttribute(A.format, .string(FeatureDumpFormat.format))
        try file.setAttribute(A.version, .int64(FeatureDumpFormat.version))
        try file.setAttribute(A.config, .string(config))
        try file.setAttribute(A.images, .strings(images))
        try file.setAttribute(A.grid, .int64s([Int64(grid.h), Int64(grid.w)]))
        try file.setAttribute(A.imageMean, .float64s(normalization.mean.map(Double.init)))
        try file.setAttribute(A.imageStd, .float64s(normalization.std.map(Double.init)))
    }

    /// Records the transform kind (`dct`, `fft`, `haar`, `identity`) the spectra were made
    /// with, so a reader need not recover it from the data.
    public func setTransform(_ kind: String) throws {
        try file.setAttribute(FeatureDumpFormat.Attribute.transform, .string(kind))
    }

    /// Creates `/<path>` of shape `[imageCount] + rowShape`.
    public func create(_ path: String, rowShape: [Int]) throws {
        try file.createDataset(path, shape: [imageCount] + rowShape)
    }

    /// Creates `/layer_<ii>/<dataset>` of shape `[imageCount] + rowShape`.
    public func create(layer: Int, _ dataset: FeatureDumpFormat.LayerDataset, rowShape: [Int]) throws {
        try create(FeatureDumpFormat.layerPath(layer, dataset), rowShape: rowShape)
    }

    /// Writes rows `first ..< first + t.shape[0]` of `/<path>`.
    public func write(_ path: String, rows t: Tensor, first: Int) throws {
        try file.writeRows(t, to: path, firstRow: first)
    }

    /// Writes rows `first ..< first + t.shape[0]` of `/layer_<ii>/<dataset>`.
    public func write(layer: Int, _ dataset: FeatureDumpFormat.LayerDataset, rows t: Tensor, first: Int) throws {
        try write(FeatureDumpFormat.layerPath(layer, dataset), rows: t, first: first)
    }

    /// Writes a whole dataset (`/mask` and the like).
    public func write(_ path: String, _ t: Tensor) throws {
        try file.write(t, to: path)
    }
}
