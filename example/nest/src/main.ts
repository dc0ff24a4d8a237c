import 'reflect-metadata'
import { NestFactory } from '@nestjs/core'
import { AppModule } from './app.module'

async function main(): Promise<void> {
  const app = await NestFactory.create(AppModule)
  // The store is closed on SIGTERM/SIGINT too.
  app.enableShutdownHooks()
  const port = Number(process.env.PORT ?? 3001)
  await app.listen(port, '127.0.0.1')
  console.log(`listening on http://127.0.0.1:${port}`)
}

void main()
