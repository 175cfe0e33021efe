"""The fleet pages' helpers: SVG charts, run-out forecasts, status and level words (router: ``portal.routers.fleet``)."""
