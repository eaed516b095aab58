import ChildProcesses
import HDF5

enum CheckpointComparison {
    /// Every dataset under /params and /optimizer of two checkpoints compared bit for bit;
    /// returns the names of those that differ (or exist in one only).
    static func differingDatasets(_ a: String, _ b: String) throws -> [String] {
        let fa = try HDF5File.open(a), fb = try HDF5File.open(b)
        var names = Set<String>()
        for group in ["params", "optimizer"] {
            for p in try fa.datasetPaths(under: group) { names.insert(p) }
            for p in try fb.datasetPaths(under: group) { names.insert(p) }
        }
        if names.isEmpty { throw ChildProcess.Failure("no /params or /optimizer datasets in \(a)") }
        var differing: [String] = []
        for n in names.sorted() {
            guard fa.isDataset(n), fb.isDataset(n) else { differing.append(n); continue }
            let x = try fa.readTensor(n), y = try fb.readTensor(n)
            if x.shape != y.shape || !x.array.elementsEqual(y.array, by: { $0.bitPattern == $1.bitPattern }) {
                differing.append(n)
            }
        }
        return differing
    }
}
