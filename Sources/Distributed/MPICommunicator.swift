/// The MPI communicator (Open MPI; any MPI-3 library with the `CMPI` shim).
///
/// Initialised once per process with `MPI_Init_thread(MPI_THREAD_FUNNELED)`: worker threads
/// (Parallel.forEach, BLAS) may run, but only the main thread calls MPI. `MPI_Finalize`
/// runs at normal process exit (an `on_exit` handler, or `finish()`); an exit with a
/// non-zero status — `abort(code:)`, or any `exit(1)` such as ArgumentParser's error exit —
/// calls `MPI_Abort`, so an error on one rank ends every rank instead of leaving them
/// blocked in a collective. `localRank`/`localSize` come from `MPI_Comm_split_type(SHARED)`.
import CMPI
import Foundation

// @unchecked: as its base class; MPI is called from the main thread only (FUNNELED).
public final class MPICommunicator: Communicator, @unchecked Sendable {
    /// The process-wide communicator (MPI can be initialised only once).
    public static let shared = MPICommunicator()

    private let world: MPI_Comm

    private init() {
        var initialised: Int32 = 0
        MPI_Initialized(&initialised)
        if initialised == 0 {
            var provided: Int32 = 0
            MPI_Init_thread(nil, nil, ct_mpi_thread_funneled(), &provided)
            #if canImport(Glibc)
            // The handler sees the exit status: 0 finalises, anything else aborts the job.
            on_exit({ status, _ in MPICommunicator.atExit(status: status) }, nil)
            #else
            atexit { MPICommunicator.finalizeIfNeeded() }
            #endif
        }
        guard let world = ct_mpi_comm_world() else { fatalError("MPI_COMM_WORLD is null") }
        var rank: Int32 = 0
        var size: Int32 = 1
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        var local: MPI_Comm? = nil
        var localRank: Int32 = 0
        var localSize: Int32 = 1
        if MPI_Comm_split_type(world, ct_mpi_comm_type_shared(), rank, ct_mpi_info_null(), &local) == ct_mpi_success(),
           let localComm = local {
            MPI_Comm_rank(localComm, &localRank)
            MPI_Comm_size(localComm, &localSize)
            MPI_Comm_free(&local)
        }
        self.world = world
        super.init(rank: Int(rank), size: Int(size), localRank: Int(localRank), localSize: Int(localSize))
    }

    /// The exit handler: a zero status finalises MPI; a non-zero one (an error exit from
    /// anywhere, e.g. ArgumentParser's `exit(withError:)`) calls `MPI_Abort` so the other
    /// ranks are not left blocked in a collective.
    static func atExit(status: Int32) {
        if status == 0 {
            finalizeIfNeeded()
            return
        }
        var initialised: Int32 = 0
        var finalised: Int32 = 0
        MPI_Initialized(&initialised)
        MPI_Finalized(&finalised)
        if initialised != 0 && finalised == 0, let world = ct_mpi_comm_world() {
            fflush(nil)   // every output stream (stdout, stderr) before the processes die
            MPI_Abort(world, status)
        }
    }

    /// Calls `MPI_Finalize` once, if MPI is initialised and not finalised yet.
    static func finalizeIfNeeded() {
        var initialised: Int32 = 0
        var finalised: Int32 = 0
        MPI_Initialized(&initialised)
        MPI_Finalized(&finalised)
        if initialised != 0 && finalised == 0 { MPI_Finalize() }
    }

    private static func datatype(_ element: CommunicatorElement) -> MPI_Datatype {
        switch element {
        case .float32: return ct_mpi_float()
        case .float64: return ct_mpi_double()
        case .int64: return ct_mpi_int64()
        case .uint64: return ct_mpi_uint64()
        case .byte: return ct_mpi_uint8()
        }
    }

    private static func op(_ operation: ReduceOperation) -> MPI_Op {
        switch operation {
        case .sum: return ct_mpi_sum()
        case .max: return ct_mpi_max()
        case .min: return ct_mpi_min()
        }
    }

    override public func barrier() {
        MPI_Barrier(world)
    }

    override public func broadcastRaw(_ pointer: UnsafeMutableRawPointer, count: Int, element: CommunicatorElement,
                                      root: Int) {
        precondition(root >= 0 && root < size, "broadcast root \(root) outside 0..<\(size)")
        let type = MPICommunicator.datatype(element)
        var offset = 0
        while offset < count {
            let n = Swift.min(Communicator.maxElementsPerCall, count - offset)
            MPI_Bcast(pointer + offset * element.size, Int32(n), type, Int32(root), world)
            offset += n
        }
    }

    override public func allReduceRaw(_ pointer: UnsafeMutableRawPointer, count: Int, element: CommunicatorElement,
                                      operation: ReduceOperation) {
        let type = MPICommunicator.datatype(element)
        let op = MPICommunicator.op(operation)
        var offset = 0
        while offset < count {
            let n = Swift.min(Communicator.maxElementsPerCall, count - offset)
            MPI_Allreduce(ct_mpi_in_place(), pointer + offset * element.size, Int32(n), type, op, world)
            offset += n
        }
    }

    override public func allGatherRaw(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int,
                                      element: CommunicatorElement) {
        precondition(count * size < Int(Int32.max), "allGather of \(count) elements per rank is too large")
        let type = MPICommunicator.datatype(element)
        MPI_Allgather(input, Int32(count), type, output, Int32(count), type, world)
    }

    override public func abort(code: Int32) -> Never {
        fflush(nil)   // every output stream (stdout, stderr) before the processes die
        MPI_Abort(world, code)
        exit(code)
    }

    override public func finish() -> Never {
        fflush(nil)
        MPICommunicator.finalizeIfNeeded()
        exit(0)
    }
}
