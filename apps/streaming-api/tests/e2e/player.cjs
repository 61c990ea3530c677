// The demo player in headless Chromium, driven by playwright-core: run by
// tests/api/player.rs against a service it started. Exits non-zero (with
// the reason) if anything does not work, above all if audio or video does
// not advance.
//
// Environment: BASE (the service), PLAYWRIGHT_CORE (the package directory),
// CHROMIUM (the browser), READY (a ready track), MOVIE (the demo movie),
// SCREENSHOT (where to save the picture).
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.BASE;
const READY = process.env.READY;
const MOVIE = process.env.MOVIE;

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") {
        problems.push(`console: ${message.text()}`);
      }
    });

    // A refused token is explained in plain words, from the problem document.
    await page.goto(`${base}/`);
    await page.waitForSelector(`li[data-id="${READY}"] button`);
    await page.fill("#token", "not-a-token");
    await page.click("#token-form button");
    await page.waitForSelector("#error:not([hidden])");
    const refused = await page.textContent("#error");
    check(/token/i.test(refused), `a refused token should be explained, the page said: ${refused}`);
    problems.length = 0; // the browser logs that 401 itself

    // Progress reports the page sends on its own (every second here, every 10 s by default).
    let timedReports = 0;
    let paused = false;
    page.on("request", (request) => {
      if (request.method() === "POST" && request.url().endsWith(`/api/v1/stream/${MOVIE}/progress`) && !paused) {
        timedReports += 1;
      }
    });

    // The demo token is filled in: the list comes back.
    await page.goto(`${base}/?progress_every_ms=1000`);
    await page.waitForSelector(`li[data-id="${READY}"] button`);
    const listed = await page.$$eval("#media-list li", (rows) => rows.map((row) => row.dataset.id));
    check(listed.includes(MOVIE), `the demo movie should be listed: ${listed}`);
    check(await page.isVisible("#error") === false, `no error on load: ${await page.textContent("#error")}`);

    // The track plays through its signed URL, and seeking works (Range).
    await page.click(`li[data-id="${READY}"] button`);
    await page.waitForFunction(() => document.getElementById("audio").currentTime > 0.5, null, { timeout: 15000 });
    const source = await page.$eval("#audio", (audio) => audio.currentSrc);
    check(source.includes("sig="), "the audio element plays a signed URL");
    await page.$eval("#audio", (audio) => { audio.currentTime = 3.5; });
    await page.waitForFunction(() => {
      const audio = document.getElementById("audio");
      return !audio.seeking && audio.currentTime > 3.6;
    }, null, { timeout: 15000 });

    // The movie plays with hls.js through the signed manifest.
    const mse = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'));
    check(mse, "this Chromium cannot decode H.264/AAC through Media Source Extensions");
    await page.click(`li[data-id="${MOVIE}"] button`);
    await page.waitForFunction(() => document.getElementById("video").currentTime > 2.2, null, { timeout: 20000 });
    const audioStopped = await page.$eval("#audio", (audio) => audio.paused);
    check(audioStopped, "starting the movie stops the track");

    check(timedReports >= 2, `progress is reported while playing: ${timedReports} reports in 2 s at 1 per second`);

    // Pausing reports the position; the picture is taken while it shows.
    paused = true;
    const reported = page.waitForResponse((r) => r.url().endsWith(`/api/v1/stream/${MOVIE}/progress`) && r.request().method() === "POST");
    await page.$eval("#video", (video) => video.pause());
    check((await reported).status() === 200, "the progress report was accepted");
    const stoppedAt = await page.$eval("#video", (video) => video.currentTime);
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

    // A reload stops the session (on page hide; the caller checks the
    // service's events), and the movie resumes where it stopped.
    await page.reload();
    await page.waitForSelector(`li[data-id="${MOVIE}"] button`);
    await page.click(`li[data-id="${MOVIE}"] button`);
    await page.waitForFunction(() => /Resuming at \d+ s/.test(document.getElementById("status").textContent));
    const said = await page.textContent("#status");
    const resumedAt = Number(said.match(/Resuming at (\d+) s/)[1]);
    check(resumedAt === Math.floor(stoppedAt), `resumes where it stopped (${stoppedAt} s): the page said ${said}`);
    await page.waitForFunction((at) => document.getElementById("video").currentTime > at + 0.3, resumedAt, { timeout: 20000 });

    check(problems.length === 0, `the page reported errors:\n${problems.join("\n")}`);

    // The interactive API docs render this service's document, from local files only.
    await page.goto(`${base}/docs`);
    await page.waitForSelector(".swagger-ui .info .title", { timeout: 20000 });
    const title = await page.textContent(".swagger-ui .info .title");
    check(/streamgate/i.test(title), `the docs show the service's document: ${title}`);
    await page.waitForSelector(`.opblock-summary-path[data-path="/api/v1/stream/{movie_id}"]`);
    check(problems.length === 0, `the docs page reported errors:\n${problems.join("\n")}`);
    console.log(`ok: track played and seeked, movie played to ${stoppedAt.toFixed(2)} s and resumed at ${resumedAt} s`);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
