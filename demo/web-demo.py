#!/usr/bin/env python3
# The seed's web-demo pod: answers every GET with "This is env NAME ! Config
# file is". Usage: web-demo.py NAME ADDR PORT
import http.server
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One segment per answer: without it the body waits for the peer's
    # delayed ACK (40 ms) behind the head.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = ("This is env %s ! Config file is\n" % sys.argv[1]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # HTTPServer.server_bind looks its address up in DNS (getfqdn),
        # which hangs in a namespace without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


server = Server((sys.argv[2], int(sys.argv[3])), Handler)
server.daemon_threads = True
server.serve_forever()
