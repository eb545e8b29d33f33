//! `ratls measure`: compute the MRTD a TDX guest gets from a TDVF firmware image.

use std::path::PathBuf;
use std::process::ExitCode;

use ratls_quic::measure::parse_memory_size;
use ratls_quic::measure::{compute_boot_rtmrs, measure_mr_td, DirectBoot, PageAddOrder};

/// Host order of TDH.MEM.PAGE.ADD and TDH.MR.EXTEND.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub(crate) enum OrderArg {
    /// Each page added then extended (upstream KVM and QEMU).
    #[default]
    PerPage,
    /// All pages of a section added before any is extended (older KVM-TDX/QEMU stacks).
    Section,
}

impl From<OrderArg> for PageAddOrder {
    fn from(order: OrderArg) -> Self {
        match order {
            OrderArg::PerPage => Self::PerPage,
            OrderArg::Section => Self::PerSection,
        }
    }
}

/// Compute MRTD from a TDVF (OVMF) firmware image.
#[derive(Debug, clap::Args)]
pub(crate) struct MeasureArgs {
    /// TDVF firmware image (the full OVMF.fd given to the VMM with -bios).
    #[arg(long)]
    firmware: PathBuf,
    /// Kernel for direct boot (QEMU -kernel): RTMR1 and RTMR2 are computed when given.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initrd for direct boot (QEMU -initrd).
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel command line as given to QEMU -append.
    #[arg(long, requires = "kernel")]
    cmdline: Option<String>,
    /// Guest memory size as QEMU's -m reads it: MiB without a suffix (512 is 512 MiB), or with
    /// B, K, M, G or T (2G); required with --kernel (it moves the initrd).
    #[arg(long, requires = "kernel")]
    memory: Option<String>,
    /// Host order of page adds and extends.
    #[arg(long, value_enum, default_value_t = OrderArg::PerPage)]
    order: OrderArg,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `ratls measure`.
pub(crate) fn run(args: &MeasureArgs) -> ExitCode {
    let image = match std::fs::read(&args.firmware) {
        Ok(image) => image,
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.firmware.display());
            return ExitCode::from(2);
        }
    };
    let mr_td = match measure_mr_td(&image, args.order.into()) {
        Ok(mr_td) => hex::encode(mr_td),
        Err(e) => {
            eprintln!("error: {}: {e}", args.firmware.display());
            return ExitCode::from(2);
        }
    };
    let rtmrs = match &args.kernel {
        Some(kernel) => match boot_rtmrs(args, kernel) {
            Ok(rtmrs) => Some(rtmrs),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if args.json {
        let mut out = serde_json::json!({ "mr_td": mr_td });
        if let Some((rtmr1, rtmr2)) = &rtmrs {
            out["rtmr1"] = rtmr1.as_str().into();
            out["rtmr2"] = rtmr2.as_str().into();
        }
        println!("{out}");
    } else {
        println!("mr_td {mr_td}");
        if let Some((rtmr1, rtmr2)) = &rtmrs {
            println!("rtmr1 {rtmr1}");
            println!("rtmr2 {rtmr2}");
        }
    }
    ExitCode::SUCCESS
}

/// RTMR1 and RTMR2 (hex) for a direct kernel boot.
fn boot_rtmrs(args: &MeasureArgs, kernel: &PathBuf) -> Result<(String, String), String> {
    let memory = args
        .memory
        .as_deref()
        .ok_or("--memory is required with --kernel")?;
    let memory_size =
        parse_memory_size(memory).ok_or_else(|| format!("--memory {memory:?}: not a size"))?;
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let kernel_bytes = read(kernel)?;
    let initrd = match &args.initrd {
        Some(path) => read(path)?,
        None => Vec::new(),
    };
    let boot = DirectBoot {
        kernel: &kernel_bytes,
        initrd: &initrd,
        cmdline: args.cmdline.as_deref().unwrap_or_default(),
        memory_size,
    };
    let rtmrs = compute_boot_rtmrs(&boot).map_err(|e| format!("{}: {e}", kernel.display()))?;
    Ok((hex::encode(rtmrs.rtmr1), hex::encode(rtmrs.rtmr2)))
}
