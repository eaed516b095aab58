/// HDF5 attributes on the root, groups and datasets.
///
/// Strings are written as variable-length UTF-8 (h5py reads them as `str`, string arrays
/// as arrays of `str`); scalars with a scalar dataspace, arrays as 1-D. Reading also
/// accepts fixed-length strings and any integer/float width written by other tools.
import CHDF5
import Core
import Foundation
import Numerics

/// A typed attribute value.
public enum HDF5Attribute: Equatable, Sendable, CustomStringConvertible {
    case string(String)
    case strings([String])
    case int64(Int64)
    case int64s([Int64])
    case float64(Double)
    case float64s([Double])
    case uint64s([UInt64])

    public var description: String {
        switch self {
        case .string(let s): return s
        case .strings(let s): return "\(s)"
        case .int64(let v): return "\(v)"
        case .int64s(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .float64s(let v): return "\(v)"
        case .uint64s(let v): return "\(v)"
        }
    }
}

extension HDF5File {
    // MARK: - Writing

    /// Sets attribute `name` on the object at `objectPath` (root by default), replacing
    /// an existing attribute of that name.
    public func setAttribute(_ name: String, _ value: HDF5Attribute, on objectPath: String = "/") throws {
        let what = "attribute '\(name)'"
        try withObject(objectPath) { object in
            if H5Aexists(object, name) > 0, H5Adelete(object, name) < 0 {
                throw error("cannot replace \(what)", object: objectPath)
            }
            switch value {
            case .string(let s):
                try writeStrings([s], scalar: true, name: name, object: object, objectPath: objectPath)
            case .strings(let s):
                try writeStrings(s, scalar: false, name: name, object: object, objectPath: objectPath)
            case .int64(let v):
                try writeNumbers([v], scalar: true, name: name, object: object, objectPath: objectPath)
            case .int64s(let v):
                try writeNumbers(v, scalar: false, name: name, object: object, objectPath: objectPath)
            case .float64(let v):
                try writeNumbers([v], scalar: true, name: name, object: object, objectPath: objectPath)
            case .float64s(let v):
                try writeNumbers(v, scalar: false, name: name, object: object, objectPath: objectPath)
            case .uint64s(let v):
                try writeNumbers(v, scalar: false, name: name, object: object, objectPath: objectPath)
            }
        }
    }

    private func makeSpace(count: Int, scalar: Bool, objectPath: String) throws -> hid_t {
        var dims = [hsize_t(count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        if space < 0 { throw error("cannot create dataspace", object: objectPath) }
        return space
    }

    private func writeNumbers<T: HDF5Numeric>(_ values: [T], scalar: Bool, name: String, object: hid_t,
                                              objectPath: String) throws {
        let space = try makeSpace(count: values.count, scalar: scalar, objectPath: objectPath)
        defer { H5Sclose(space) }
        let attribute = H5Acreate2(object, name, T.hdf5FileType, space, ct_h5p_default(), ct_h5p_default())
        if attribute < 0 { throw error("cannot create attribute '\(name)' (read-only file?)", object: objectPath) }
        defer { H5Aclose(attribute) }
        if values.isEmpty { return }
        let status = values.withUnsafeBytes { H5Awrite(attribute, T.hdf5MemoryType, $0.baseAddress) }
        if status < 0 { throw error("cannot write attribute '\(name)'", object: objectPath) }
    }

    private func writeStrings(_ values: [String], scalar: Bool, name: String, object: hid_t,
                              objectPath: String) throws {
        let type = ct_h5t_vlen_utf8()
        if type < 0 { throw error("cannot create a string type", object: objectPath) }
        defer { H5Tclose(type) }
        let space = try makeSpace(count: values.count, scalar: scalar, objectPath: objectPath)
        defer { H5Sclose(space) }
        let attribute = H5Acreate2(object, name, type, space, ct_h5p_default(), ct_h5p_default())
        if attribute < 0 { throw error("cannot create attribute '\(name)' (read-only file?)", object: objectPath) }
        defer { H5Aclose(attribute) }
        if values.isEmpty { return }
        var pointers: [UnsafeMutablePointer<CChar>?] = values.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        if H5Awrite(attribute, type, &pointers) < 0 {
            throw error("cannot write attribute '\(name)'", object: objectPath)
        }
    }

    // MARK: - Reading

    /// The attribute names of the object at `objectPath`, in name order.
    public func attributeNames(of objectPath: String = "/") throws -> [String] {
        try withObject(objectPath) { object in
            let count = ct_h5_num_attrs(object)
            if count < 0 { throw error("cannot read attributes (corrupt file?)", object: objectPath) }
            var names: [String] = []
            for index in 0..<hsize_t(count) {
                let size = H5Aget_name_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, ct_h5p_default())
                if size < 0 { throw error("cannot read attribute name (corrupt file?)", object: objectPath) }
                var buffer = [CChar](repeating: 0, count: Int(size) + 1)
                H5Aget_name_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, Int(size) + 1, ct_h5p_default())
                names.append(String(cString: buffer))
            }
            return names
        }
    }

    /// Whether the object at `objectPath` has attribute `name`.
    /// The most elements (or string bytes) one attribute may hold: 16 M, far above any
    /// attribute we write (the resolved config is a few kB).
    public static let maxAttributeElements = 1 << 24

    public func hasAttribute(_ name: String, on objectPath: String = "/") -> Bool {
        (try? withObject(objectPath) { H5Aexists($0, name) > 0 }) ?? false
    }

    /// Reads attribute `name` of the object at `objectPath`.
    public func attribute(_ name: String, of objectPath: String = "/") throws -> HDF5Attribute {
        try withObject(objectPath) { object in
            guard H5Aexists(object, name) > 0 else { throw error("no attribute '\(name)'", object: objectPath) }
            let attribute = H5Aopen(object, name, ct_h5p_default())
            if attribute < 0 { throw error("cannot open attribute '\(name)' (corrupt file?)", object: objectPath) }
            defer { H5Aclose(attribute) }
            let space = H5Aget_space(attribute)
            if space < 0 { throw error("cannot read attribute '\(name)'", object: objectPath) }
            defer { H5Sclose(space) }
            let shape = try shapeOf(space: space, objectPath: objectPath)
            let scalar = shape.isEmpty
            // Attributes are small metadata; a huge dataspace can only come from a crafted file.
            guard let count = Tensor.checkedElementCount(shape, limit: HDF5File.maxAttributeElements) else {
                throw error("attribute '\(name)' has \(shape) elements, more than \(HDF5File.maxAttributeElements) (corrupt file?)", object: objectPath)
            }
            let type = H5Aget_type(attribute)
            if type < 0 { throw error("cannot read the type of attribute '\(name)'", object: objectPath) }
            defer { H5Tclose(type) }
            let failure = error("cannot read attribute '\(name)' (corrupt file?)", object: objectPath)
            switch HDF5ElementType.of(type) {
            case .string:
                let strings = try readStrings(attribute, type: type, space: space, count: count, failure: failure)
                return scalar ? .string(strings.first ?? "") : .strings(strings)
            case .float:
                let values: [Double] = try readNumbers(attribute, count: count, failure: failure)
                return scalar ? .float64(values[0]) : .float64s(values)
            case .signedInteger:
                let values: [Int64] = try readNumbers(attribute, count: count, failure: failure)
                return scalar ? .int64(values[0]) : .int64s(values)
            case .unsignedInteger:
                let values: [UInt64] = try readNumbers(attribute, count: count, failure: failure)
                if scalar, values[0] <= UInt64(Int64.max) { return .int64(Int64(values[0])) }
                return .uint64s(values)
            case .other(let kind):
                throw error("attribute '\(name)' has unsupported type \(kind)", object: objectPath)
            }
        }
    }

    private func readNumbers<T: HDF5Numeric>(_ attribute: hid_t, count: Int, failure: CausalTuneError) throws -> [T] {
        if count == 0 { return [] }
        return try [T](unsafeUninitializedCapacity: count) { buffer, initialised in
            initialised = 0
            if H5Aread(attribute, T.hdf5MemoryType, buffer.baseAddress) < 0 { throw failure }
            initialised = count
        }
    }

    private func readStrings(_ attribute: hid_t, type: hid_t, space: hid_t, count: Int,
                             failure: CausalTuneError) throws -> [String] {
        if count == 0 { return [] }
        if H5Tis_variable_str(type) > 0 {
            let memoryType = ct_h5t_vlen_utf8()
            if memoryType < 0 { throw failure }
            defer { H5Tclose(memoryType) }
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            if H5Aread(attribute, memoryType, &pointers) < 0 { throw failure }
            let strings = pointers.map { $0.map { String(cString: $0) } ?? "" }
            ct_h5_vlen_reclaim(memoryType, space, &pointers)
            return strings
        }
        // Fixed-length: `size` bytes per element, NUL- or space-padded.
        let size = Int(H5Tget_size(type))
        guard size > 0, size <= HDF5File.maxAttributeElements / max(count, 1) else { throw failure }
        let memoryType = H5Tcopy(type)
        if memoryType < 0 { throw failure }
        defer { H5Tclose(memoryType) }
        let padding = H5Tget_strpad(type)
        var bytes = [UInt8](repeating: 0, count: size * count)
        if H5Aread(attribute, memoryType, &bytes) < 0 { throw failure }
        return (0..<count).map { i in
            var element = bytes[(i * size)..<((i + 1) * size)]
            if let end = element.firstIndex(of: 0) { element = element[element.startIndex..<end] }
            var s = String(decoding: element, as: UTF8.self)
            if padding == H5T_STR_SPACEPAD { while s.hasSuffix(" ") { s.removeLast() } }
            return s
        }
    }

    // MARK: - Typed readers (one clear error when the type is not the expected one)

    /// Attribute `name` as a string.
    public func stringAttribute(_ name: String, of objectPath: String = "/") throws -> String {
        switch try attribute(name, of: objectPath) {
        case .string(let s): return s
        case .strings(let s) where s.count == 1: return s[0]
        case let other: throw typeError(name, objectPath, "a string", other)
        }
    }

    /// Attribute `name` as a list of strings.
    public func stringArrayAttribute(_ name: String, of objectPath: String = "/") throws -> [String] {
        switch try attribute(name, of: objectPath) {
        case .strings(let s): return s
        case .string(let s): return [s]
        case let other: throw typeError(name, objectPath, "a list of strings", other)
        }
    }

    /// Attribute `name` as an integer.
    public func int64Attribute(_ name: String, of objectPath: String = "/") throws -> Int64 {
        switch try attribute(name, of: objectPath) {
        case .int64(let v): return v
        case .int64s(let v) where v.count == 1: return v[0]
        case let other: throw typeError(name, objectPath, "an integer", other)
        }
    }

    /// Attribute `name` as a list of integers.
    public func int64ArrayAttribute(_ name: String, of objectPath: String = "/") throws -> [Int64] {
        switch try attribute(name, of: objectPath) {
        case .int64s(let v): return v
        case .int64(let v): return [v]
        case .uint64s(let v) where v.allSatisfy({ $0 <= UInt64(Int64.max) }): return v.map { Int64($0) }
        case let other: throw typeError(name, objectPath, "a list of integers", other)
        }
    }

    /// Attribute `name` as a floating-point number (integers are converted).
    public func float64Attribute(_ name: String, of objectPath: String = "/") throws -> Double {
        switch try attribute(name, of: objectPath) {
        case .float64(let v): return v
        case .int64(let v): return Double(v)
        case .float64s(let v) where v.count == 1: return v[0]
        case let other: throw typeError(name, objectPath, "a number", other)
        }
    }

    /// Attribute `name` as a list of floating-point numbers.
    public func float64ArrayAttribute(_ name: String, of objectPath: String = "/") throws -> [Double] {
        switch try attribute(name, of: objectPath) {
        case .float64s(let v): return v
        case .float64(let v): return [v]
        case .int64s(let v): return v.map { Double($0) }
        case let other: throw typeError(name, objectPath, "a list of numbers", other)
        }
    }

    /// Attribute `name` as a list of UInt64 (e.g. an RNG state).
    public func uint64ArrayAttribute(_ name: String, of objectPath: String = "/") throws -> [UInt64] {
        switch try attribute(name, of: objectPath) {
        case .uint64s(let v): return v
        case .int64(let v) where v >= 0: return [UInt64(v)]
        case .int64s(let v) where v.allSatisfy({ $0 >= 0 }): return v.map { UInt64($0) }
        case let other: throw typeError(name, objectPath, "a list of unsigned integers", other)
        }
    }

    private func typeError(_ name: String, _ objectPath: String, _ expected: String, _ found: HDF5Attribute) -> CausalTuneError {
        let kind: String
        switch found {
        case .string: kind = "a string"
        case .strings: kind = "a list of strings"
        case .int64: kind = "an integer"
        case .int64s: kind = "a list of integers"
        case .float64: kind = "a number"
        case .float64s: kind = "a list of numbers"
        case .uint64s: kind = "a list of unsigned integers"
        }
        return error("attribute '\(name)' is \(kind), expected \(expected)", object: objectPath)
    }
}
