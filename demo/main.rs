//! `make demo`: the operator's main job, end to end, on a local control plane.
//! (Filled in by the chart/demo issue.)

fn main() {
    eprintln!("demo: not written yet");
}
