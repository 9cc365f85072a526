//! The floor: a bare actix-web server answering a small JSON body, built with the same release
//! profile as rockit-edge — the ceiling any handler on this stack can reach on this machine.

use actix_web::{web, App, HttpResponse, HttpServer};

async fn answer() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"success","apps":[],"total":0,"offset":0,"limit":10}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let server = HttpServer::new(|| App::new().route("/", web::get().to(answer))).bind(listen)?;
    for addr in server.addrs() {
        println!("floor listening on http://{addr}");
    }
    server.run().await
}
