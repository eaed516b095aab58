/// Data-parallel communication: the collective operations the trainer needs.
///
/// Every rank holds the whole frozen backbone and the small trainable set; after each
/// step's backward passes the ranks gather each other's gradient subtree sums
/// (`allGatherRaw`, see the trainer's `SlotGradientSum`) so that every rank adds them in one
/// fixed order. Evaluation sums confusion matrices (`allReduceSum` over Int64/Double buffers); rank 0
/// broadcasts configuration text and RNG state. `Communicator.make()` picks
/// `MPICommunicator` when the process was started by `mpirun`/`srun` (environment
/// `OMPI_COMM_WORLD_SIZE`, `PMI_SIZE` or `PMIX_RANK` present) and
/// `SingleProcessCommunicator` otherwise, so a plain `causal-tune train` runs without MPI.
///
/// The typed operations below are built on four primitives that the two implementations
/// provide (`barrier`, `broadcastRaw`, `allReduceRaw`, `allGatherRaw`). Buffers longer than
/// 2^30 elements are sent in chunks (MPI counts are 32-bit).
import Foundation

/// The element types the primitives move.
public enum CommunicatorElement: Sendable {
    case float32, float64, int64, uint64, byte

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32: return 4
        case .float64, .int64, .uint64: return 8
        case .byte: return 1
        }
    }
}

/// A reduction operator.
public enum ReduceOperation: Sendable {
    case sum, max, min
}

/// The ranks of one data-parallel job. Subclasses: `MPICommunicator`,
/// `SingleProcessCommunicator`. Collective calls must be made by every rank in the same
/// order; call them from one thread (MPI is initialised `MPI_THREAD_FUNNELED`).
// @unchecked: MPI's state is process-wide and every collective is made from the main thread.
public class Communicator: @unchecked Sendable {
    /// This process's rank in `0 ..< size`.
    public let rank: Int
    /// The number of ranks.
    public let size: Int
    /// This process's rank among the ranks on the same node.
    public let localRank: Int
    /// The number of ranks on this node (divide the cores by it for BLAS threads).
    public let localSize: Int

    init(rank: Int, size: Int, localRank: Int, localSize: Int) {
        self.rank = rank
        self.size = size
        self.localRank = localRank
        self.localSize = localSize
    }

    /// Whether this is rank 0 (the rank that prints and writes).
    public var isRoot: Bool { rank == 0 }

    /// Whether more than one process takes part.
    public var isDistributed: Bool { size > 1 }

    /// The number of threads each rank on this node should use for BLAS and parallel
    /// loops: the node's online cores divided by the local ranks, and no more than the
    /// cores this process may run on (its affinity mask, e.g. an `mpirun --bind-to`
    /// binding); at least 1.
    public var threadsPerRank: Int {
        let online = Swift.max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let allowed = Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)
        return Swift.max(1, Swift.min(allowed, online / Swift.max(1, localSize)))
    }

    // MARK: - Primitives (overridden)

    /// Blocks until every rank has called it.
    public func barrier() { fatalError("Communicator.barrier is implemented by subclasses") }

    /// Sends `count` elements at `pointer` from `root` to every rank (in place).
    public func broadcastRaw(_ pointer: UnsafeMutableRawPointer, count: Int, element: CommunicatorElement, root: Int) {
        fatalError("Communicator.broadcastRaw is implemented by subclasses")
    }

    /// Reduces `count` elements at `pointer` across ranks with `operation`; every rank gets
    /// the result in place.
    public func allReduceRaw(_ pointer: UnsafeMutableRawPointer, count: Int, element: CommunicatorElement,
                             operation: ReduceOperation) {
        fatalError("Communicator.allReduceRaw is implemented by subclasses")
    }

    /// Gathers `count` elements from every rank into `output` (`size * count` elements,
    /// rank order) on every rank.
    public func allGatherRaw(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int,
                             element: CommunicatorElement) {
        fatalError("Communicator.allGatherRaw is implemented by subclasses")
    }

    /// Ends the whole job with `code` (MPI_Abort under MPI, `exit` otherwise) so no rank is
    /// left waiting in a collective.
    public func abort(code: Int32) -> Never {
        exit(code)
    }

    /// Ends the process normally (finalises MPI first).
    public func finish() -> Never {
        exit(0)
    }

    /// The largest number of elements one MPI call moves (MPI counts are 32-bit); longer
    /// buffers are sent in chunks. Lowered only by `communicator-check` to test chunking.
    // Set only by `communicator-check`, before its first collective.
    nonisolated(unsafe) public static var maxElementsPerCall = 1 << 30

    // MARK: - Factory

    /// The communicator for this process: `MPICommunicator` when started by an MPI
    /// launcher (see `launchedByMPI`), otherwise `SingleProcessCommunicator`. The MPI
    /// communicator is created once; later calls return the same object.
    public static func make(environment: [String: String] = ProcessInfo.processInfo.environment) -> Communicator {
        if launchedByMPI(environment: environment) {
            return MPICommunicator.shared
        }
        return SingleProcessCommunicator()
    }

    /// Whether the environment shows an MPI launcher (Open MPI's `mpirun`, Hydra/Slurm PMI
    /// or PMIx) started this process.
    public static func launchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].contains { environment[$0] != nil }
    }

    /// Whether an MPI launcher started this process as a rank other than 0 — read from the
    /// environment, without initialising MPI (for commands that do their work on rank 0 alone).
    public static func launchedAsNonRootRank(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        for key in ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"] {
            if let v = environment[key], let r = Int(v) { return r != 0 }
        }
        return false
    }

    /// Runs `body` (the program) and ends the job: `finish()` when it returns, and when it
    /// throws prints the error (`causal-tune: <message>`, with the rank when distributed)
    /// to stderr and calls `abort(code: 1)` so the other ranks do not hang.
    public func run(_ body: () throws -> Void) -> Never {
        do {
            try body()
        } catch {
            let prefix = isDistributed ? "causal-tune (rank \(rank)): " : "causal-tune: "
            FileHandle.standardError.write(Data((prefix + "\(error)\n").utf8))
            abort(code: 1)
        }
        finish()
    }
}

