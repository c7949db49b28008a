// Starts Swagger UI on /docs. A file of its own (not an inline <script>) so the page's
// Content-Security-Policy allows scripts from 'self' only. validatorUrl: null keeps Swagger UI
// from sending the document to validator.swagger.io.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", validatorUrl: null});
});
