"""The MCP server exposing explain / fit / steer and the steps beneath them."""
