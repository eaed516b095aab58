import Backbone
import Foundation
import HDF5
import PEFT

extension PEFTAdapter {
    /// Loads `/params/peft/*` from a reference §Files checkpoint (HDF5). Only the parameters
    /// are read, not the root attributes, so a checkpoint written with h5py loads as well.
    /// A missing or misshapen parameter is one error naming the file and the name.
    public func loadCheckpoint(_ path: String) throws {
        let file = try HDF5File.open(path)
        defer { try? file.close() }
        try loadParameters(from: path) { name in
            let objectPath = CheckpointLayout.parameterPath(name)
            return file.isDataset(objectPath) ? try file.readTensor(objectPath) : nil
        }
    }
}
