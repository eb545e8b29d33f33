//! `ratls measure`: compute the MRTD a TDX guest gets from a TDVF firmware image.

use std::path::PathBuf;
use std::process::ExitCode;

use ratls_quic::repro::{measure_mr_td, PageAddOrder};

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
    /// Kernel for direct boot (RTMR1; not computed yet, refused).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initrd for direct boot (RTMR2; not computed yet, refused).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Kernel command line (RTMR2; not computed yet, refused).
    #[arg(long)]
    cmdline: Option<String>,
    /// Host order of page adds and extends.
    #[arg(long, value_enum, default_value_t = OrderArg::PerPage)]
    order: OrderArg,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `ratls measure`.
pub(crate) fn run(args: &MeasureArgs) -> ExitCode {
    if args.kernel.is_some() || args.initrd.is_some() || args.cmdline.is_some() {
        eprintln!(
            "error: RTMR1/RTMR2 (--kernel, --initrd, --cmdline) are not computed by this version; \
             only MRTD is (see docs/measure.md)"
        );
        return ExitCode::from(2);
    }
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
    if args.json {
        println!("{}", serde_json::json!({ "mr_td": mr_td }));
    } else {
        println!("mr_td {mr_td}");
    }
    ExitCode::SUCCESS
}
