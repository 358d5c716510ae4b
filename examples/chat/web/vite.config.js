import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// VITE_CONVEX_URL (environment or .env.local) is the backend's URL; without it the page
// talks to `convection dev` on its default port.
export default defineConfig({
  plugins: [react()],
  server: { port: 5173 },
});
