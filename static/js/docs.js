// /docs: starts Swagger UI on the OpenAPI document (a file, not an inline script, so the
// page's Content-Security-Policy can forbid inline scripts).
const holder = document.getElementById("swagger-ui");
window.SwaggerUIBundle({
  url: holder.dataset.openapi,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [window.SwaggerUIBundle.presets.apis],
});
