//! Data-parallel training across processes and machines on MPI (cargo feature `mpi`), in
//! the manner of PyTorch's `DistributedDataParallel` and Horovod.
//!
//! Every process (a *rank*) holds a full copy of the model. [`Distributed::init`] starts
//! MPI; [`Distributed::broadcast_parameters`] copies rank 0's parameters to every rank
//! (DDP does this at construction, Horovod's `broadcast_parameters(root_rank=0)`); then
//! [`fit`](crate::fit()) with [`FitConfig::distributed`](crate::FitConfig) set runs each step
//! as
//!
//! 1. every rank takes its shard of the same global batch of `batch_size` samples
//!    ([`shard_batches`]: the shards are disjoint, sizes differ by at most one);
//! 2. every rank computes the gradient `g_r` of its shard's mean loss;
//! 3. one allreduce over a flattened buffer ([`Distributed::average_gradients`]) gives every
//!    rank the same weighted mean `g = Σ_r n_r·g_r / Σ_r n_r` (`n_r` the shard sizes), which
//!    is the gradient of the global batch's mean loss — what one process with batch
//!    `batch_size` computes, up to the order of summation;
//! 4. every rank applies the same optimizer update, so parameters and optimizer state stay
//!    identical (bitwise: the allreduce hands every rank the same bits).
//!
//! The epoch's loss and metrics are summed across ranks before they are logged, so every rank
//! (and rank 0, which alone prints) sees the global figures. Outputs — checkpoints, charts —
//! are for rank 0 alone to write ([`Distributed::is_root`]); pass a `ModelCheckpoint` callback
//! on rank 0 only. Validation data is evaluated whole on every rank (the parameters being
//! equal, so are the results), so callbacks such as `EarlyStopping` decide alike everywhere.
//! Dropout and other random layers draw from their own seeds: give each rank its own.
//!
//! **Uneven batches.** A global batch of `b` samples gives rank `r` the samples
//! `[⌊r·b/N⌋, ⌊(r+1)·b/N⌋)`; the gradient weighting above makes any split exact. Unlike
//! PyTorch's `DistributedSampler`, no sample is repeated to pad the epoch. A global batch with
//! fewer samples than ranks (only an epoch's last, short batch can be one, since `fit` asks
//! for `batch_size ≥ N`) is skipped on every rank.
//!
//! **Failures.** A panic on any rank calls `MPI_Abort` (a panic hook installed by
//! [`Distributed::init`]), and so does an error returned by a distributed `fit`: otherwise the
//! other ranks would wait forever in their next collective. `mpirun` then ends the job with a
//! nonzero status.
//!
//! ```text
//! cargo build --release --features mpi --example mnist
//! mpirun -np 2 target/release/examples/mnist --distributed
//! mpirun --hostfile hosts -np 8 target/release/examples/mnist --distributed   # several machines
//! ```
//!
//! See `DISTRIBUTED.md` at the repository root for measurements and a cost model.

use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tapegrad_core::{Element, Error, Gradients, Result, Tensor};
use tapegrad_nn::Module;

/// Whether MPI is running (set by [`Distributed::init`], cleared before `MPI_Finalize`), so the
/// panic hook never calls `MPI_Abort` outside that window.
static MPI_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Status with which `MPI_Abort` ends the job after a panic.
const PANIC_EXIT: i32 = 101;
/// Status with which `MPI_Abort` ends the job after an error in a distributed `fit`.
const ERROR_EXIT: i32 = 1;

/// One process's handle on an MPI job: its rank, the number of ranks, and the collectives
/// that data-parallel training needs. Dropping it finalizes MPI.
///
/// ```no_run
/// use tapegrad_train::distributed::Distributed;
/// let dist = Distributed::init()?;
/// println!("rank {} of {}", dist.rank(), dist.world_size());
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub struct Distributed {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Seconds spent in gradient allreduces (waiting for slower ranks included).
    allreduce_seconds: Cell<f64>,
    /// Declared last: MPI is finalized when it drops.
    _universe: Universe,
}

impl Distributed {
    /// Initializes MPI (`MPI_Init`) and installs a panic hook that, after the usual panic
    /// message, aborts the whole job (`MPI_Abort` on the world communicator, status 101).
    /// Run without `mpirun`, it is a job of one rank.
    ///
    /// Errors if MPI was already initialized in this process.
    ///
    /// ```no_run
    /// # use tapegrad_train::distributed::Distributed;
    /// let dist = Distributed::init()?;
    /// assert!(dist.rank() < dist.world_size());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::bad_value("Distributed::init", "MPI is already initialized in this process"))?;
        let world = universe.world();
        let rank = usize::try_from(world.rank()).unwrap_or(0);
        let size = usize::try_from(world.size()).unwrap_or(1);
        MPI_ACTIVE.store(true, Ordering::SeqCst);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if MPI_ACTIVE.swap(false, Ordering::SeqCst) {
                eprintln!("rank {rank}: panicked; aborting the MPI job");
                SimpleCommunicator::world().abort(PANIC_EXIT);
            }
        }));
        Ok(Distributed {
            world,
            rank,
            size,
            allreduce_seconds: Cell::new(0.0),
            _universe: universe,
        })
    }

    /// This process's rank, `0..world_size()`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks N.
    pub fn world_size(&self) -> usize {
        self.size
    }

    /// Whether this is rank 0, the one that prints and writes outputs.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Total seconds this rank has spent in [`average_gradients`](Self::average_gradients)'
    /// allreduce, waiting for slower ranks included.
    pub fn allreduce_seconds(&self) -> f64 {
        self.allreduce_seconds.get()
    }

    /// The world communicator, for collectives of the caller's own (`mpi` crate).
    pub fn communicator(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Blocks until every rank has called it (`MPI_Barrier`).
    pub fn barrier(&self) {
        self.world.barrier();
    }

    /// Ends the whole job with `status` (`MPI_Abort`), after printing `message` on stderr.
    pub fn abort(&self, status: i32, message: &str) -> ! {
        eprintln!("rank {}: {message}; aborting the MPI job", self.rank);
        MPI_ACTIVE.store(false, Ordering::SeqCst);
        self.world.abort(status)
    }

    /// Passes `Ok` through; on `Err`, aborts the job (status 1) naming the error, since the
    /// other ranks would otherwise wait forever in their next collective.
    pub fn or_abort<R>(&self, result: Result<R>) -> Result<R> {
        match result {
            Ok(r) => Ok(r),
            Err(e) => self.abort(ERROR_EXIT, &format!("error: {e}")),
        }
    }

    /// The element-wise sum of `values` over all ranks, on every rank (`MPI_Allreduce` with
    /// `MPI_SUM`): how `fit` totals the epoch's loss and metric sums.
    ///
    /// ```no_run
    /// # use tapegrad_train::distributed::Distributed;
    /// let dist = Distributed::init()?;
    /// let total = dist.all_reduce_sum(&[1.0, dist.rank() as f64]);
    /// assert_eq!(total[0], dist.world_size() as f64);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn all_reduce_sum(&self, values: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; values.len()];
        self.world.all_reduce_into(values, &mut out[..], SystemOperation::sum());
        out
    }

    /// Whether every rank passed `ok` (a logical AND over ranks).
    fn all_ok(&self, ok: bool) -> bool {
        let mut all = 0i32;
        self.world
            .all_reduce_into(&i32::from(ok), &mut all, SystemOperation::min());
        all == 1
    }

    /// Copies rank 0's parameters (frozen ones included) into every rank's `model`, like DDP
    /// at construction. Call it once, after building the model, on every rank.
    ///
    /// Errors on every rank, without a hang, if the ranks' models differ in their number of
    /// values or the received state does not load (a name or shape differs).
    ///
    /// ```no_run
    /// # use tapegrad_train::distributed::Distributed;
    /// use rand::{rngs::StdRng, SeedableRng};
    /// use tapegrad_nn::{Dense, Module, Sequential};
    /// let dist = Distributed::init()?;
    /// // A seed differing per rank: the broadcast makes the models equal anyway.
    /// let mut model = Sequential::<f32>::new().add(Dense::new(4, 2, &mut StdRng::seed_from_u64(dist.rank() as u64))?);
    /// dist.broadcast_parameters(&mut model)?;
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn broadcast_parameters<T: Element, M: Module<T> + ?Sized>(&self, model: &mut M) -> Result<()> {
        let state = model.state_dict();
        let local_len: usize = state.iter().map(|(_, t)| t.numel()).sum();
        let mut root_len = local_len as u64;
        self.world.process_at_rank(0).broadcast_into(&mut root_len);
        if !self.all_ok(root_len == local_len as u64) {
            return Err(Error::bad_value(
                "Distributed::broadcast_parameters",
                format!(
                    "the ranks' models differ: rank 0 has {root_len} parameter values, rank {} has \
                     {local_len} (some rank differs from rank 0)",
                    self.rank
                ),
            ));
        }
        let mut flat: Vec<f64> = state
            .iter()
            .flat_map(|(_, t)| t.data().iter().map(|v| v.as_f64()))
            .collect();
        self.world.process_at_rank(0).broadcast_into(&mut flat[..]);
        let mut at = 0;
        let mut received = Vec::with_capacity(state.len());
        for (name, t) in &state {
            let values = flat[at..at + t.numel()].iter().map(|&v| T::from_f64_lossy(v)).collect();
            at += t.numel();
            received.push((name.clone(), Tensor::from_vec(values, t.dims().to_vec())?));
        }
        let loaded = model.load_state_dict(&received);
        if self.all_ok(loaded.is_ok()) {
            return Ok(());
        }
        loaded?;
        Err(Error::bad_value(
            "Distributed::broadcast_parameters",
            "another rank could not load rank 0's parameters (its model differs)",
        ))
    }

    /// The gradients every rank applies: for each of `params`, `Σ_r n_r·g_r / Σ_r n_r`, the
    /// mean over ranks weighted by `samples` (this rank's `n_r`), so the result is the gradient
    /// of the global batch's mean loss when each `g_r` is that of its shard's mean loss. One
    /// `MPI_Allreduce` over a flattened buffer in `T`'s width; a parameter gets `None` when no
    /// rank has a gradient for it (as `Optimizer::step` skips it). The result is for
    /// `Optimizer::step_with_grads`.
    ///
    /// Errors if a gradient's shape differs from its parameter's; every rank must call it
    /// with the same parameters in the same order.
    #[allow(clippy::type_complexity)] // the optimizer's own (name, parameter) pairs
    pub fn average_gradients<T: Element>(
        &self,
        params: &[(String, &mut Tensor<T>)],
        grads: &Gradients<T>,
        samples: usize,
    ) -> Result<Vec<Option<Tensor<T>>>> {
        let local: Vec<Option<&Tensor<T>>> = params.iter().map(|(_, p)| grads.get(p)).collect();
        for ((name, p), g) in params.iter().zip(&local) {
            if let Some(g) = g.filter(|g| g.shape() != p.shape()) {
                return Err(Error::bad_shape(
                    "Distributed::average_gradients",
                    format!(
                        "the gradient of {name} has shape {}, the parameter {}",
                        g.shape(),
                        p.shape()
                    ),
                ));
            }
        }
        let start = Instant::now();
        let summed = if T::DTYPE == "f32" {
            self.sum_weighted::<T, f32>(params, &local, samples)
        } else {
            self.sum_weighted::<T, f64>(params, &local, samples)
        };
        self.allreduce_seconds
            .set(self.allreduce_seconds.get() + start.elapsed().as_secs_f64());
        // Layout: every parameter's values, then one presence count per parameter, then Σ n_r.
        let total = summed[summed.len() - 1];
        let flags = &summed[summed.len() - 1 - params.len()..summed.len() - 1];
        let mut at = 0;
        let mut out = Vec::with_capacity(params.len());
        for ((_, p), &present) in params.iter().zip(flags) {
            let values = &summed[at..at + p.numel()];
            at += p.numel();
            out.push(if present > 0.0 {
                let mean = values.iter().map(|&v| T::from_f64_lossy(v / total)).collect();
                Some(Tensor::from_vec(mean, p.dims().to_vec())?)
            } else {
                None
            });
        }
        Ok(out)
    }

    /// The allreduce of [`average_gradients`](Self::average_gradients), in the wire type `W`:
    /// `n_r·g_r` for every parameter (zeros where absent), presence flags, and `n_r`; returns
    /// the sums as `f64`.
    fn sum_weighted<T: Element, W: Wire>(
        &self,
        params: &[(String, &mut Tensor<T>)],
        local: &[Option<&Tensor<T>>],
        samples: usize,
    ) -> Vec<f64> {
        let n = samples as f64;
        let values: usize = params.iter().map(|(_, p)| p.numel()).sum();
        let mut send: Vec<W> = Vec::with_capacity(values + params.len() + 1);
        for ((_, p), g) in params.iter().zip(local) {
            match g {
                Some(g) => send.extend(g.data().iter().map(|v| W::from_f64(v.as_f64() * n))),
                None => send.extend(std::iter::repeat_n(W::from_f64(0.0), p.numel())),
            }
        }
        send.extend(local.iter().map(|g| W::from_f64(if g.is_some() { 1.0 } else { 0.0 })));
        send.push(W::from_f64(n));
        let mut recv = vec![W::from_f64(0.0); send.len()];
        self.world
            .all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
        recv.into_iter().map(W::to_f64).collect()
    }

    /// This rank's shard of each global batch: [`shard_batches`] for this rank.
    pub fn shard(&self, global: &[Vec<usize>]) -> Vec<Vec<usize>> {
        shard_batches(global, self.rank, self.size)
    }
}

impl Drop for Distributed {
    fn drop(&mut self) {
        // MPI_Finalize follows (the universe drops next): no abort from the hook after it.
        MPI_ACTIVE.store(false, Ordering::SeqCst);
    }
}

/// The sampler of data-parallel training: rank `rank`'s part of every global batch, the
/// samples `[⌊rank·b/N⌋, ⌊(rank+1)·b/N⌋)` of a batch of `b`, so the shards are disjoint, cover
/// the batch, and differ in size by at most one. Every rank computes the same global batches
/// (`Dataset::batch_indices` with the same seed and epoch: PyTorch's
/// `DistributedSampler.set_epoch`), so no indices travel. A batch with fewer than `world`
/// samples is skipped (on every rank alike).
///
/// ```
/// use tapegrad_train::distributed::shard_batches;
/// let global = vec![vec![5, 1, 4, 0, 2], vec![3]];
/// assert_eq!(shard_batches(&global, 0, 2), vec![vec![5, 1]]);
/// assert_eq!(shard_batches(&global, 1, 2), vec![vec![4, 0, 2]]);
/// ```
pub fn shard_batches(global: &[Vec<usize>], rank: usize, world: usize) -> Vec<Vec<usize>> {
    let world = world.max(1);
    global
        .iter()
        .filter(|b| b.len() >= world)
        .map(|b| b[rank * b.len() / world..(rank + 1) * b.len() / world].to_vec())
        .collect()
}

/// A float type sent over MPI.
trait Wire: Equivalence + Copy {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Wire for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Wire for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}
