// The built-in labs and compose templates are embedded with include_dir;
// rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=labs");
    println!("cargo:rerun-if-changed=compose-templates");
}
