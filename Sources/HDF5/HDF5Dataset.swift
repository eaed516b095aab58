/// HDF5 datasets: float32 tensors of any rank and small typed arrays.
///
///     write(tensor, to: "params/peft/tokens")   // float32 [L, m, C], groups created
///     readTensor("params/peft/tokens")          // shape from the file
///     createDataset("layer_00/spatial", shape: [B, C, h, w]) + writeRows(...)  // in slices
///     datasetInfo("x")                          // shape + element type (for `inspect`)
///
/// Reading converts any numeric type on disk (float16/64, integers) to the requested
/// memory type, as HDF5 does; writing stores little-endian IEEE float32 / fixed integers.
import CHDF5
import Foundation
import Numerics

/// The element type of a dataset or attribute, as `inspect` reports it.
public enum HDF5ElementType: Equatable, CustomStringConvertible, Sendable {
    case float(bits: Int)
    case signedInteger(bits: Int)
    case unsignedInteger(bits: Int)
    case string
    case other(String)

    public var description: String {
        switch self {
        case .float(let b): return "float\(b)"
        case .signedInteger(let b): return "int\(b)"
        case .unsignedInteger(let b): return "uint\(b)"
        case .string: return "string"
        case .other(let s): return s
        }
    }

    /// Classifies an HDF5 datatype handle.
    static func of(_ type: hid_t) -> HDF5ElementType {
        let bits = Int(H5Tget_size(type)) * 8
        let typeClass = H5Tget_class(type)
        switch typeClass {
        case H5T_FLOAT: return .float(bits: bits)
        case H5T_INTEGER:
            return H5Tget_sign(type) == H5T_SGN_NONE ? .unsignedInteger(bits: bits) : .signedInteger(bits: bits)
        case H5T_STRING: return .string
        case H5T_COMPOUND: return .other("compound")
        case H5T_ENUM: return .other("enum")
        case H5T_ARRAY: return .other("array")
        case H5T_VLEN: return .other("vlen")
        case H5T_OPAQUE: return .other("opaque")
        case H5T_BITFIELD: return .other("bitfield")
        case H5T_REFERENCE: return .other("reference")
        default: return .other("unknown")
        }
    }
}

/// The shape and element type of a dataset.
public struct HDF5DatasetInfo: Equatable, Sendable {
    /// Dimensions, outermost first (`[]` for a scalar dataset).
    public let shape: [Int]
    public let elementType: HDF5ElementType

    public init(shape: [Int], elementType: HDF5ElementType) {
        self.shape = shape
        self.elementType = elementType
    }
    /// The number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// A Swift element type with an HDF5 memory type and the file type it is stored as.
public protocol HDF5Numeric {
    static var hdf5MemoryType: hid_t { get }
    static var hdf5FileType: hid_t { get }
}

extension Float: HDF5Numeric {
    public static var hdf5MemoryType: hid_t { ct_h5t_native_float() }
    public static var hdf5FileType: hid_t { ct_h5t_ieee_f32le() }
}
extension Double: HDF5Numeric {
    public static var hdf5MemoryType: hid_t { ct_h5t_native_double() }
    public static var hdf5FileType: hid_t { ct_h5t_ieee_f64le() }
}
extension Int64: HDF5Numeric {
    public static var hdf5MemoryType: hid_t { ct_h5t_native_int64() }
    public static var hdf5FileType: hid_t { ct_h5t_std_i64le() }
}
extension UInt64: HDF5Numeric {
    public static var hdf5MemoryType: hid_t { ct_h5t_native_uint64() }
    public static var hdf5FileType: hid_t { ct_h5t_std_u64le() }
}
extension UInt8: HDF5Numeric {
    public static var hdf5MemoryType: hid_t { ct_h5t_native_uint8() }
    public static var hdf5FileType: hid_t { ct_h5t_std_u8le() }
}

extension HDF5File {
    // MARK: - Writing

    /// Writes `tensor` as a float32 dataset at `objectPath` (shape = `tensor.shape`; rank 0
    /// is a scalar dataset), creating intermediate groups and replacing an existing dataset.
    public func write(_ tensor: Tensor, to objectPath: String) throws {
        try writeRaw(UnsafeRawPointer(tensor.data), shape: tensor.shape, memoryType: Float.hdf5MemoryType,
                     fileType: Float.hdf5FileType, to: objectPath)
    }

    /// Writes `values` (row-major, `shape` defaults to `[values.count]`) as a dataset.
    public func write<T: HDF5Numeric>(_ values: [T], shape: [Int]? = nil, to objectPath: String) throws {
        let shape = shape ?? [values.count]
        guard shape.reduce(1, *) == values.count else {
            throw error("\(values.count) values do not fill shape \(shape)", object: objectPath)
        }
        try values.withUnsafeBytes { raw in
            try writeRaw(raw.baseAddress ?? UnsafeRawPointer(bitPattern: 64)!, shape: shape,
                         memoryType: T.hdf5MemoryType, fileType: T.hdf5FileType, to: objectPath)
        }
    }

    /// Creates a float32 dataset of `shape` (zero-filled) to be filled in slices with
    /// `writeRows`; replaces an existing dataset.
    public func createDataset(_ objectPath: String, shape: [Int]) throws {
        let dataset = try createDatasetHandle(objectPath, shape: shape, fileType: Float.hdf5FileType)
        H5Dclose(dataset)
    }

    /// Writes `tensor` into rows `firstRow ..< firstRow + tensor.shape[0]` of the float32
    /// dataset at `objectPath` (its other dimensions must equal `tensor.shape.dropFirst()`).
    public func writeRows(_ tensor: Tensor, to objectPath: String, firstRow: Int) throws {
        try checkOpen()
        let name = HDF5File.h5Name(objectPath)
        guard exists(objectPath) else { throw error("no such dataset", object: objectPath) }
        let dataset = H5Dopen2(id, name, ct_h5p_default())
        if dataset < 0 { throw error("cannot open dataset", object: objectPath) }
        defer { H5Dclose(dataset) }
        let fileShape = try shapeOf(dataset: dataset, objectPath: objectPath)
        guard tensor.rank >= 1, fileShape.count == tensor.rank,
              Array(fileShape.dropFirst()) == Array(tensor.shape.dropFirst()),
              firstRow >= 0, firstRow + tensor.shape[0] <= fileShape[0] else {
            throw error("cannot write rows \(firstRow)..<\(firstRow + (tensor.shape.first ?? 0)) of shape \(tensor.shape) into a dataset of shape \(fileShape)",
                        object: objectPath)
        }
        if tensor.count == 0 { return }
        let fileSpace = H5Dget_space(dataset)
        if fileSpace < 0 { throw error("cannot read dataspace", object: objectPath) }
        defer { H5Sclose(fileSpace) }
        var start = [hsize_t](repeating: 0, count: tensor.rank)
        start[0] = hsize_t(firstRow)
        let count = tensor.shape.map { hsize_t($0) }
        if H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, nil, count, nil) < 0 {
            throw error("cannot select rows", object: objectPath)
        }
        let memorySpace = H5Screate_simple(Int32(tensor.rank), count, nil)
        if memorySpace < 0 { throw error("cannot create dataspace", object: objectPath) }
        defer { H5Sclose(memorySpace) }
        if H5Dwrite(dataset, ct_h5t_native_float(), memorySpace, fileSpace, ct_h5p_default(), tensor.data) < 0 {
            throw error("cannot write rows (disk full?)", object: objectPath)
        }
    }

    func createDatasetHandle(_ objectPath: String, shape: [Int], fileType: hid_t) throws -> hid_t {
        try checkOpen()
        let name = HDF5File.h5Name(objectPath)
        guard name != "/" else { throw error("a dataset needs a name", object: objectPath) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw error("negative dimension in \(shape)", object: objectPath) }
        if exists(objectPath) {
            if H5Ldelete(id, name, ct_h5p_default()) < 0 { throw error("cannot replace existing object", object: objectPath) }
        }
        let dims = shape.map { hsize_t($0) }
        let space = shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(shape.count), dims, nil)
        if space < 0 { throw error("cannot create dataspace for shape \(shape)", object: objectPath) }
        defer { H5Sclose(space) }
        let dataset = try withIntermediateGroups { lcpl in
            H5Dcreate2(id, name, fileType, space, lcpl, ct_h5p_default(), ct_h5p_default())
        }
        if dataset < 0 {
            throw error("cannot create dataset (a parent is not a group, or the file is read-only)", object: objectPath)
        }
        return dataset
    }

    func writeRaw(_ pointer: UnsafeRawPointer, shape: [Int], memoryType: hid_t, fileType: hid_t,
                  to objectPath: String) throws {
        let dataset = try createDatasetHandle(objectPath, shape: shape, fileType: fileType)
        defer { H5Dclose(dataset) }
        if shape.reduce(1, *) == 0 { return }
        if H5Dwrite(dataset, memoryType, ct_h5s_all(), ct_h5s_all(), ct_h5p_default(), pointer) < 0 {
            throw error("cannot write dataset (disk full?)", object: objectPath)
        }
    }

    // MARK: - Reading

    /// Whether `objectPath` names a dataset.
    public func isDataset(_ objectPath: String) -> Bool {
        guard exists(objectPath) else { return false }
        return (try? withObject(objectPath) { H5Iget_type($0) == H5I_DATASET }) ?? false
    }

    /// Whether `objectPath` names a group (the root is a group).
    public func isGroup(_ objectPath: String) -> Bool {
        guard exists(objectPath) else { return false }
        return (try? withObject(objectPath) { H5Iget_type($0) == H5I_GROUP }) ?? false
    }

    /// The shape and element type of the dataset at `objectPath`.
    public func datasetInfo(_ objectPath: String) throws -> HDF5DatasetInfo {
        try withDataset(objectPath) { dataset in
            let shape = try shapeOf(dataset: dataset, objectPath: objectPath)
            let type = H5Dget_type(dataset)
            if type < 0 { throw error("cannot read datatype", object: objectPath) }
            defer { H5Tclose(type) }
            return HDF5DatasetInfo(shape: shape, elementType: HDF5ElementType.of(type))
        }
    }

    /// Reads the dataset at `objectPath` as float32 (converting from its stored numeric
    /// type), with the shape stored in the file.
    public func readTensor(_ objectPath: String) throws -> Tensor {
        try withDataset(objectPath) { dataset in
            let shape = try shapeOf(dataset: dataset, objectPath: objectPath)
            try requireNumeric(dataset, objectPath)
            guard Tensor.checkedElementCount(shape) != nil else {
                throw error("shape \(shape) has more elements than a tensor may hold", object: objectPath)
            }
            let tensor = Tensor(zeros: shape)
            if tensor.count > 0,
               H5Dread(dataset, ct_h5t_native_float(), ct_h5s_all(), ct_h5s_all(), ct_h5p_default(), tensor.data) < 0 {
                throw error("cannot read dataset (truncated or corrupt file?)", object: objectPath)
            }
            return tensor
        }
    }

    /// Reads the dataset at `objectPath` into `tensor`, whose shape must match the file's.
    public func read(_ objectPath: String, into tensor: Tensor) throws {
        let info = try datasetInfo(objectPath)
        guard info.shape == tensor.shape else {
            throw error("shape \(info.shape) in the file, expected \(tensor.shape)", object: objectPath)
        }
        try withDataset(objectPath) { dataset in
            try requireNumeric(dataset, objectPath)
            if tensor.count > 0,
               H5Dread(dataset, ct_h5t_native_float(), ct_h5s_all(), ct_h5s_all(), ct_h5p_default(), tensor.data) < 0 {
                throw error("cannot read dataset (truncated or corrupt file?)", object: objectPath)
            }
        }
    }

    /// Reads the dataset at `objectPath` as a flat array of `T` plus its shape.
    public func readArray<T: HDF5Numeric>(_ objectPath: String, as: T.Type = T.self) throws -> (shape: [Int], values: [T]) {
        try withDataset(objectPath) { dataset in
            let shape = try shapeOf(dataset: dataset, objectPath: objectPath)
            try requireNumeric(dataset, objectPath)
            guard let count = Tensor.checkedElementCount(shape) else {
                throw error("shape \(shape) has more elements than an array may hold", object: objectPath)
            }
            var values = [T]()
            if count > 0 {
                values = try [T](unsafeUninitializedCapacity: count) { buffer, initialised in
                    if H5Dread(dataset, T.hdf5MemoryType, ct_h5s_all(), ct_h5s_all(), ct_h5p_default(), buffer.baseAddress) < 0 {
                        initialised = 0
                        throw error("cannot read dataset as \(T.self) (truncated or corrupt file, or an out-of-range value)",
                                    object: objectPath)
                    }
                    initialised = count
                }
            }
            return (shape, values)
        }
    }

    /// Reads a UInt64 dataset (e.g. a saved RNG state) as a flat array.
    public func readUInt64Array(_ objectPath: String) throws -> [UInt64] {
        try readArray(objectPath, as: UInt64.self).values
    }

    func withDataset<R>(_ objectPath: String, _ body: (hid_t) throws -> R) throws -> R {
        try checkOpen()
        guard exists(objectPath) else { throw error("no such dataset", object: objectPath) }
        guard isDataset(objectPath) else { throw error("is a group, not a dataset", object: objectPath) }
        let dataset = H5Dopen2(id, HDF5File.h5Name(objectPath), ct_h5p_default())
        if dataset < 0 { throw error("cannot open dataset (corrupt file?)", object: objectPath) }
        defer { H5Dclose(dataset) }
        return try body(dataset)
    }

    func shapeOf(dataset: hid_t, objectPath: String) throws -> [Int] {
        let space = H5Dget_space(dataset)
        if space < 0 { throw error("cannot read dataspace", object: objectPath) }
        defer { H5Sclose(space) }
        return try shapeOf(space: space, objectPath: objectPath)
    }

    func shapeOf(space: hid_t, objectPath: String) throws -> [Int] {
        let rank = H5Sget_simple_extent_ndims(space)
        if rank < 0 { throw error("cannot read dataspace", object: objectPath) }
        if rank == 0 {
            // A scalar has rank 0 and one element; a null dataspace has none.
            return H5Sget_simple_extent_type(space) == H5S_NULL ? [0] : []
        }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        if H5Sget_simple_extent_dims(space, &dims, nil) < 0 { throw error("cannot read dataspace", object: objectPath) }
        // Sizes from the file: refuse any whose element count does not fit an Int.
        guard dims.allSatisfy({ $0 <= hsize_t(Int.max) }),
              Tensor.checkedElementCount(dims.map { Int($0) }, limit: Int.max) != nil else {
            throw error("dataspace \(dims) is larger than memory can hold (corrupt file?)", object: objectPath)
        }
        return dims.map { Int($0) }
    }

    private func requireNumeric(_ dataset: hid_t, _ objectPath: String) throws {
        let type = H5Dget_type(dataset)
        if type < 0 { throw error("cannot read datatype", object: objectPath) }
        defer { H5Tclose(type) }
        let element = HDF5ElementType.of(type)
        switch element {
        case .float, .signedInteger, .unsignedInteger: return
        default: throw error("holds \(element) elements, expected numbers", object: objectPath)
        }
    }
}
