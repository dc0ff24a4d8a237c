'use strict'

// Nest 10 beside the devDependencies' Nest 11, for nest10.config.js: installed
// once into .tmp/nest10 (kept between runs while the versions match).
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const DIR = path.join(__dirname, '../../.tmp/nest10')
const PACKAGES = ['@nestjs/common@10', '@nestjs/core@10', '@nestjs/platform-express@10', '@nestjs/testing@10']

module.exports = async () => {
  const marker = path.join(DIR, 'installed')
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === PACKAGES.join(' ')) return
  fs.mkdirSync(DIR, { recursive: true })
  fs.writeFileSync(path.join(DIR, 'package.json'), '{ "private": true }\n')
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...PACKAGES], { cwd: DIR, stdio: 'inherit' })
  fs.writeFileSync(marker, PACKAGES.join(' '))
}
