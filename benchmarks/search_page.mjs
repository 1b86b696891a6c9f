// Drives `infomax serve`'s page in a real headless Chromium (playwright-core, the system's
// Chromium): picks an indexed image, checks that it comes back first among its neighbours,
// uploads an image file through the file input, checks the neighbours shown, and takes a
// screenshot. Called by benchmarks/search_page.py, which starts the server:
//   node search_page.mjs URL UPLOAD_FILE SCREENSHOT CHROMIUM
import { chromium } from "playwright-core";

const [url, upload, shot, executablePath] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const result = { url };
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("#sample img");
  result.info = await page.textContent("#info");
  result.samples = await page.locator("#sample img").count();
  const first = page.locator("#sample img").first();
  const picked = await first.getAttribute("alt");
  await first.click();
  await page.waitForSelector(".neighbor");
  const shown = await page.locator(".neighbor").allTextContents();
  result.picked = picked;
  result.neighbors_of_picked = shown;
  result.picked_is_first = shown.length > 0 && shown[0].endsWith(picked);
  await page.setInputFiles("#file", upload);
  await page.waitForFunction(() => document.getElementById("qpath").textContent === "your image");
  await page.waitForFunction(() => [...document.querySelectorAll(".neighbor img")]
    .every((img) => img.complete && img.naturalWidth > 0));
  result.neighbors_of_upload = await page.locator(".neighbor").allTextContents();
  result.errors = errors.concat([await page.textContent("#error")].filter((t) => t));
  await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.picked_is_first && result.errors.length === 0 ? 0 : 1);
