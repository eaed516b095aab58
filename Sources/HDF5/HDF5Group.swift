/// HDF5 groups: create by path (intermediate groups included) and list children.
import CHDF5
import Foundation

/// One entry of a group listing.
public struct HDF5Child: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case group, dataset, other }
    /// The link name inside the group (no slashes).
    public let name: String
    public let kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

extension HDF5File {
    /// Creates the group at `objectPath` and any missing parents; an existing group is kept.
    public func createGroup(_ objectPath: String) throws {
        try checkOpen()
        let name = HDF5File.h5Name(objectPath)
        if name == "/" { return }
        if exists(objectPath) {
            if isGroup(objectPath) { return }
            throw error("exists and is not a group", object: objectPath)
        }
        let group = try withIntermediateGroups { lcpl in
            H5Gcreate2(id, name, lcpl, ct_h5p_default(), ct_h5p_default())
        }
        if group < 0 { throw error("cannot create group (a parent is a dataset, or the file is read-only)", object: objectPath) }
        H5Gclose(group)
    }

    /// The children of the group at `objectPath` (the root by default), in name order.
    public func children(of objectPath: String = "/") throws -> [HDF5Child] {
        try checkOpen()
        guard exists(objectPath) else { throw error("no such group", object: objectPath) }
        guard isGroup(objectPath) else { throw error("is a dataset, not a group", object: objectPath) }
        let group = H5Gopen2(id, HDF5File.h5Name(objectPath), ct_h5p_default())
        if group < 0 { throw error("cannot open group (corrupt file?)", object: objectPath) }
        defer { H5Gclose(group) }
        var info = H5G_info_t()
        if H5Gget_info(group, &info) < 0 { throw error("cannot read group (corrupt file?)", object: objectPath) }
        var result: [HDF5Child] = []
        for index in 0..<info.nlinks {
            let size = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, ct_h5p_default())
            if size < 0 { throw error("cannot read link name (corrupt file?)", object: objectPath) }
            var buffer = [CChar](repeating: 0, count: Int(size) + 1)
            H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, Int(size) + 1, ct_h5p_default())
            let name = String(cString: buffer)
            var kind = HDF5Child.Kind.other
            let object = H5Oopen(group, name, ct_h5p_default())
            if object >= 0 {
                switch H5Iget_type(object) {
                case H5I_GROUP: kind = .group
                case H5I_DATASET: kind = .dataset
                default: kind = .other
                }
                H5Oclose(object)
            }
            result.append(HDF5Child(name: name, kind: kind))
        }
        return result
    }

    /// Every dataset below `objectPath`, as full paths without the leading slash
    /// (`params/peft/scale`), depth-first in name order.
    public func datasetPaths(under objectPath: String = "/") throws -> [String] {
        let base = HDF5File.normalise(objectPath)
        var result: [String] = []
        for child in try children(of: base) {
            let full = base.isEmpty ? child.name : base + "/" + child.name
            switch child.kind {
            case .dataset: result.append(full)
            case .group: result += try datasetPaths(under: full)
            case .other: break
            }
        }
        return result
    }
}
