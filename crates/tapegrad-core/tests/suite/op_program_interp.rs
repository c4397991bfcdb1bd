// The op-program interpreter, shared by the suite's property test (`op_program.rs`) and
// the `op_program` fuzz target (`fuzz/fuzz_targets/op_program.rs`, through `include!`), so
// CI runs what the fuzzer runs. Depends on tapegrad-core's public API only.
//
// Bytes decode into a few small input tensors (ranks 0–3, dims 0–4, values that include
// NaN, ±∞, −0, subnormals and huge numbers) and a short program of ops whose operands,
// axes, shapes and indices also come from the bytes, invalid ones included (out-of-range
// and negative axes, shapes of 2⁴⁰ and usize::MAX, indices past the end). The contract
// checked: every op returns `Ok` or `Err`, never panics; then backward (and sometimes a
// second-order backward) from the sum of the last value either errors or gives every
// input a gradient of its own shape.

use tapegrad_core::{grad, IndexTensor, Result as TgResult, Tensor};

/// Reads the program's bytes; past the end, reads zeros (so every byte string decodes).
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 0
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// An element value: mostly small numbers, sometimes the values kernels get wrong.
    fn value(&mut self) -> f64 {
        match self.byte() {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => f64::MIN_POSITIVE / 8.0, // subnormal
            5 => 1e300,
            6 => -1e300,
            7 => 1e-300,
            b => (b as f64 - 128.0) / 16.0,
        }
    }
    /// A dim: usually 0–4, sometimes too large for memory.
    fn dim(&mut self) -> usize {
        match self.byte() % 16 {
            14 => 1 << 40,
            15 => usize::MAX,
            d => (d % 5) as usize,
        }
    }
    fn small_dims(&mut self, max_rank: u8) -> Vec<usize> {
        let rank = self.byte() % (max_rank + 1);
        (0..rank).map(|_| (self.byte() % 5) as usize).collect()
    }
    fn any_dims(&mut self) -> Vec<usize> {
        let rank = self.byte() % 4;
        (0..rank).map(|_| self.dim()).collect()
    }
    fn axis(&mut self) -> isize {
        (self.byte() % 9) as isize - 4
    }
    fn axes(&mut self) -> Vec<isize> {
        let n = self.byte() % 4;
        (0..n).map(|_| self.axis()).collect()
    }
    fn index(&mut self) -> usize {
        match self.byte() % 8 {
            7 => usize::MAX,
            i => i as usize,
        }
    }
    fn indices(&mut self) -> Vec<usize> {
        let n = self.byte() % 5;
        (0..n).map(|_| self.index()).collect()
    }
}

/// What running a program did: how many ops succeeded and whether backward ran.
#[derive(Debug, Default)]
pub struct ProgramRun {
    pub ops_ok: usize,
    pub ops_err: usize,
    pub backward_ran: bool,
}

/// Runs the program in `data`. `Err` means the contract was broken (a gradient of the wrong
/// shape); a panic anywhere is a bug the caller reports.
pub fn run_op_program(data: &[u8]) -> Result<ProgramRun, String> {
    let mut b = Bytes { data, pos: 0 };
    let mut run = ProgramRun::default();
    let n_inputs = 1 + b.byte() % 3;
    let inputs: Vec<Tensor<f64>> = (0..n_inputs)
        .map(|_| {
            let dims = b.small_dims(3);
            let n: usize = dims.iter().product();
            let vals = (0..n).map(|_| b.value()).collect();
            Tensor::from_vec(vals, dims).expect("dims fill").requires_grad()
        })
        .collect();
    let mut vals: Vec<Tensor<f64>> = inputs.clone();
    let create_graph = b.byte().is_multiple_of(4);
    for _ in 0..12 {
        if b.done() {
            break;
        }
        let op = b.byte();
        let x = vals[b.byte() as usize % vals.len()].clone();
        let y = vals[b.byte() as usize % vals.len()].clone();
        match step(op, &x, &y, &mut b) {
            Ok(t) => {
                run.ops_ok += 1;
                vals.push(t);
            }
            Err(e) => {
                run.ops_err += 1;
                // Errors must say what went wrong: never an empty message.
                if e.to_string().trim().is_empty() {
                    return Err(format!("op {op}: an error with an empty message"));
                }
            }
        }
    }
    let last = vals.last().expect("inputs are never empty").sum_all();
    if !last.is_tracked() {
        return Ok(run);
    }
    let refs: Vec<&Tensor<f64>> = inputs.iter().collect();
    let gs = match grad(&last, &refs, None, create_graph) {
        Ok(gs) => gs,
        Err(e) => return Err(format!("backward of a tracked scalar failed: {e}")),
    };
    run.backward_ran = true;
    for (x, g) in inputs.iter().zip(&gs) {
        if g.shape() != x.shape() {
            return Err(format!(
                "gradient of shape {} for an input of shape {}",
                g.shape(),
                x.shape()
            ));
        }
    }
    if create_graph {
        // Second order: differentiate the sum of the first gradients again.
        let total = gs.iter().fold(Tensor::scalar(0.0), |acc, g| {
            acc.add(&g.sum_all()).expect("scalars add")
        });
        if total.is_tracked() {
            let g2 = grad(&total, &refs, None, false).map_err(|e| format!("second-order backward failed: {e}"))?;
            for (x, g) in inputs.iter().zip(&g2) {
                if g.shape() != x.shape() {
                    return Err(format!(
                        "second-order gradient of shape {} for an input of shape {}",
                        g.shape(),
                        x.shape()
                    ));
                }
            }
        }
    }
    Ok(run)
}

fn step(op: u8, x: &Tensor<f64>, y: &Tensor<f64>, b: &mut Bytes<'_>) -> TgResult<Tensor<f64>> {
    Ok(match op % 48 {
        0 => x.add(y)?,
        1 => x.sub(y)?,
        2 => x.mul(y)?,
        3 => x.div(y)?,
        4 => x.pow(y)?,
        5 => x.maximum(y)?,
        6 => x.minimum(y)?,
        7 => x.add_scalar(b.value()),
        8 => x.mul_scalar(b.value()),
        9 => x.powf(b.value())?,
        10 => x.neg(),
        11 => x.exp(),
        12 => x.log(),
        13 => x.sqrt(),
        14 => x.abs(),
        15 => x.tanh(),
        16 => x.sigmoid(),
        17 => x.relu(),
        18 => x.leaky_relu(b.value()),
        19 => x.softplus(),
        20 => x.clamp(b.value(), b.value())?,
        21 => x.square(),
        22 => x.matmul(y)?,
        23 => x.matmul_t(y, b.flag(), b.flag())?,
        24 => x.sum(b.axes(), b.flag())?,
        25 => x.mean(b.axes(), b.flag())?,
        26 => x.max(b.axes(), b.flag())?,
        27 => x.min(b.axes(), b.flag())?,
        28 => x.logsumexp(b.axes(), b.flag())?,
        29 => x.softmax(b.axis())?,
        30 => x.log_softmax(b.axis())?,
        31 => x.reshape(b.any_dims())?,
        32 => x.permute(b.axes())?,
        33 => x.transpose(b.axis(), b.axis())?,
        34 => x.squeeze(b.axis())?,
        35 => x.unsqueeze(b.axis())?,
        36 => x.broadcast_to(b.any_dims())?,
        37 => x.sum_to(b.any_dims())?,
        38 => x.narrow(b.axis(), b.index(), b.index())?,
        39 => Tensor::concat(&[x, y], b.axis())?,
        40 => Tensor::stack(&[x, y], b.axis())?,
        41 => x.index_select(b.axis(), &b.indices())?,
        42 => x.index_add(b.axis(), &b.indices(), y)?,
        43 => {
            let dims = b.small_dims(3);
            let n: usize = dims.iter().product();
            let idx = IndexTensor::from_vec((0..n).map(|_| b.index()).collect(), dims)?;
            if b.flag() {
                x.gather(b.axis(), &idx)?
            } else {
                x.scatter_add(b.axis(), &idx, y)?
            }
        }
        44 => Tensor::where_cond(&x.gt(y)?, x, y)?,
        45 => x.flatten(b.axis())?,
        46 => {
            let ix = x.argmax(b.axis(), b.flag())?;
            Tensor::from_vec(ix.data().iter().map(|&i| i as f64).collect(), ix.shape().clone())?
        }
        _ => x.sign(),
    })
}
