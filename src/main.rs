fn main() {
    println!("jettag");
}
