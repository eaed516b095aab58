import Foundation
import Synchronization

/// The persistent threads behind `Parallel.forEach`.
///
/// A training step opens several hundred short parallel regions (≈ 800 in the ViT-S b2
/// step: every split product, every elementwise pass), often tens of microseconds apart.
/// Waking a sleeping thread for each costs a futex round trip and a reschedule; with
/// libdispatch's `concurrentPerform` in place of these workers the ViT-S step was ≈ 7 %
/// slower (alternating runs, `causal-tune bench`). So
/// the workers here *spin* for a short while (`spinSeconds`) after each region, watching
/// one atomic word, and only then sleep on a condition variable; the calling thread runs
/// part 0 itself and spins (yielding) until the others are done. This is the
/// `OMP_WAIT_POLICY`/`KMP_BLOCKTIME` trade-off of OpenMP runtimes, with a short block time
/// so that idle workers give their core back quickly.
///
/// Protocol: `state` packs (generation << 16 | parts). The dispatcher publishes the job,
/// sets `pending = parts − 1` and then bumps `state`; worker `i` (1…) that sees a new
/// generation runs part `i` if `i < parts` and decrements `pending`. Only one region runs
/// at a time (`busy`); a region requested while another runs (from another thread) runs
/// inline on its caller. The sleep/wake hand-off is the classic store-then-load pair
/// (`sleepers` vs `state`, both sequentially consistent), so a wake-up is never lost.
// @unchecked: shared state is atomics, the mutex/condition pair, and fields written only by
// the dispatcher while it holds `busy` (published to workers through `state`).
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker keeps spinning before it sleeps.
    static let spinSeconds = 200e-6

    private let state = Atomic<UInt64>(0)
    private let pending = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    /// Worker threads started so far (touched only by the dispatcher holding `busy`).
    private var started = 0
    /// The running region's body, `(part) -> Void`, valid while its generation runs.
    // Written by the dispatcher before it publishes the generation in `state`; read after.
    nonisolated(unsafe) private var job: UnsafeRawPointer?

    private init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    /// Runs `body(0) … body(parts − 1)` in parallel, part 0 on the calling thread.
    func run(parts: Int, _ body: (Int) -> Void) {
        precondition(parts >= 1 && parts < 1 << 16)
        guard parts > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for part in 0..<parts { body(part) }
            return
        }
        startWorkers(upTo: parts - 1)
        withoutActuallyEscaping(body) { body in
            withUnsafePointer(to: body) { pointer in
                job = UnsafeRawPointer(pointer)
                pending.store(parts - 1, ordering: .relaxed)
                let generation = (state.load(ordering: .relaxed) >> 16) &+ 1
                state.store(generation << 16 | UInt64(parts), ordering: .sequentiallyConsistent)
                if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                    pthread_mutex_lock(mutex)
                    pthread_cond_broadcast(condition)
                    pthread_mutex_unlock(mutex)
                }
                WorkerPool.runPart(pointer, 0)
                var spins = 0
                while pending.load(ordering: .acquiring) > 0 {
                    spins += 1
                    // On a machine shared with other work a worker may be descheduled:
                    // stop burning the core it needs after a short while.
                    if spins > 2000 { sched_yield() }
                }
                job = nil
            }
        }
        busy.store(false, ordering: .releasing)
    }

    /// Runs one part with the thread marked as inside a region (nested regions run inline).
    /// Not inlined so that every reference the call takes is released before `pending`
    /// is decremented (the body must not outlive `withoutActuallyEscaping`).
    @inline(never)
    private static func runPart(_ job: UnsafeRawPointer, _ part: Int) {
        Parallel.markRegion(true)
        job.assumingMemoryBound(to: ((Int) -> Void).self).pointee(part)
        Parallel.markRegion(false)
    }

    private func startWorkers(upTo count: Int) {
        while started < count {
            started += 1
            // The state before this region is published: the new thread must see the
            // region as new even if it first runs after the publication.
            let index = started, before = state.load(ordering: .acquiring)
            let thread = Thread { [self] in workerLoop(index: index, seen: before) }
            thread.name = "causal-tune worker \(index)"
            thread.start()
        }
    }

    private func workerLoop(index: Int, seen initial: UInt64) {
        var seen = initial
        while true {
            var current = state.load(ordering: .acquiring)
            if current == seen {
                let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(WorkerPool.spinSeconds * 1e9)
                var spins = 0
                while current == seen {
                    spins += 1
                    if spins & 255 == 0 && DispatchTime.now().uptimeNanoseconds > deadline { break }
                    current = state.load(ordering: .acquiring)
                }
            }
            if current == seen {
                sleepers.add(1, ordering: .sequentiallyConsistent)
                pthread_mutex_lock(mutex)
                while true {
                    current = state.load(ordering: .sequentiallyConsistent)
                    if current != seen { break }
                    pthread_cond_wait(condition, mutex)
                }
                pthread_mutex_unlock(mutex)
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
            }
            seen = current
            let parts = Int(current & 0xFFFF)
            if index < parts {
                // A participant's job is set before the generation it reads (never nil).
                WorkerPool.runPart(job!, index)
                pending.subtract(1, ordering: .releasing)
            }
        }
    }
}
